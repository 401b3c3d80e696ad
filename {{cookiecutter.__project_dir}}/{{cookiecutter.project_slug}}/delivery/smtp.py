"""Django's SMTP mailer, keeping what the server answered for each recipient it refused
while it accepted the others (Django's own mailer drops that answer)."""

import smtplib

from django.core.mail.backends import smtp


class RefusalsKept:
    """smtplib returns the refused recipients from sendmail(); keep them on the connection."""

    refused = {}

    def sendmail(self, *args, **kwargs):
        self.refused = super().sendmail(*args, **kwargs)
        return self.refused


class SMTP(RefusalsKept, smtplib.SMTP):
    pass


class SMTP_SSL(RefusalsKept, smtplib.SMTP_SSL):
    pass


class EmailBackend(smtp.EmailBackend):
    @property
    def connection_class(self):
        return SMTP_SSL if self.use_ssl else SMTP
