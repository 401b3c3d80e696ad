"""What Django's error reports (the DEBUG page, the mails to ADMINS) show of settings and of
the request's environment: Django hides values whose names say they are secret (KEY, PASS,
TOKEN, ...); this hides the password in a URL too (CELERY_BROKER_URL, DATABASE_URL,
EMAIL_URL). https://docs.djangoproject.com/en/stable/howto/error-reporting/#filtering-sensitive-information
"""

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@ -> the password
PASSWORD_IN_URL = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE)


class SafeReportFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            value = PASSWORD_IN_URL.sub(rf"\1:{self.cleansed_substitute}@", value)
        return value
