"""Error reports (the DEBUG page, the mails to ADMINS) show no password of the site's URLs."""

import secrets
import sys

from django.test import RequestFactory
from django.views.debug import ExceptionReporter

PASSWORD = secrets.token_hex(8)  # not in the page's source lines either


def report(request):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return ExceptionReporter(request, *sys.exc_info(), is_email=False).get_traceback_html()


def test_the_debug_page_hides_the_passwords_in_the_brokers_database_and_mail_urls(settings):
    settings.DEBUG = True
    settings.CELERY_BROKER_URL = f"amqp://site:{PASSWORD}@rabbitmq:5672/site"
    request = RequestFactory().get(
        "/",
        # runserver copies the process's environment into every request's META
        DATABASE_URL=f"postgres://site:{PASSWORD}-db@db:5432/site",
        EMAIL_URL=f"smtp+tls://mailer:{PASSWORD}-mail@smtp.example.com:587",
    )

    page = report(request)

    assert PASSWORD not in page
    assert "amqp://site:********************@rabbitmq:5672/site" in page
    assert "smtp+tls://mailer:********************@smtp.example.com:587" in page
