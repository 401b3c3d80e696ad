"""Whose fault each answer of a mail server or email service is, and what then happens to the
mail: refused fails it at once, passing retries it until MAIL_GIVE_UP_AFTER, the site's
setup keeps it waiting however old it gets, throttled holds it for the provider's limits
without counting an attempt. One row per answer the site classifies."""

import smtplib
import ssl
from datetime import timedelta

import pytest
import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused, AnymailRequestsAPIError
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from post_office.models import Email

from {{ cookiecutter.project_slug }}.delivery import (
    answers,
    models,
    sweeper,
)

pytestmark = pytest.mark.django_db


def http_answer(status, body=b'{"message": "answer"}'):
    """An email service's HTTP answer, as requests hands it to anymail."""
    response = requests.Response()
    response.status_code, response._content = status, body
    response.headers["Content-Type"] = "application/json"
    return response


def service_error(status):
    """What anymail raises for a requests-based service (Mailgun, Postmark, SendGrid, Brevo)."""
    return AnymailRequestsAPIError("the service said no", response=http_answer(status))


def ses_error(status, code):
    """What anymail raises for Amazon SES: boto3's parsed answer, no HTTP response object."""
    answer = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return AnymailAPIError("SES said no", response=answer)


# (what happened, the exception as its library raises it, whose fault, the HTTP status seen)
ANSWERS = [
    # The email service's key: revoked or wrong. Never the mail's fault.
    ("API 401", service_error(401), models.Fault.SETUP, 401),
    ("API 403", service_error(403), models.Fault.SETUP, 403),
    ("SES 403 key refused", ses_error(403, "InvalidClientTokenId"), models.Fault.SETUP, 403),
    # Throttling: the provider asks the site to slow down (delivery/answers.py).
    ("API 429", service_error(429), models.Fault.THROTTLED, 429),
    (
        "SES 429 too many requests",
        ses_error(429, "TooManyRequestsException"),
        models.Fault.THROTTLED,
        429,
    ),
    ("SES throttling", ses_error(400, "Throttling"), models.Fault.THROTTLED, 400),
    (
        "SMTP 454 throttling (SES)",
        smtplib.SMTPDataError(454, b"Throttling failure: Maximum sending rate exceeded."),
        models.Fault.THROTTLED,
        None,
    ),
    (
        "SMTP 454 daily quota (SES)",
        smtplib.SMTPDataError(454, b"Throttling failure: Daily message quota exceeded."),
        models.Fault.THROTTLED,
        None,
    ),
    (
        "SMTP 421 try again later",
        smtplib.SMTPDataError(421, b"4.7.0 Try again later"),
        models.Fault.THROTTLED,
        None,
    ),
    (
        "SMTP 450 too much mail (Postfix)",
        smtplib.SMTPSenderRefused(450, b"4.7.1 Error: too much mail from 10.0.0.1", "a@b.c"),
        models.Fault.THROTTLED,
        None,
    ),
    (
        "SMTP 421 too many connections (Postfix)",
        smtplib.SMTPConnectError(421, b"4.7.0 relay.test Error: too many connections"),
        models.Fault.THROTTLED,
        None,
    ),
    (
        "SMTP 550 daily quota (Gmail)",
        smtplib.SMTPDataError(550, b"5.4.5 Daily user sending quota exceeded."),
        models.Fault.THROTTLED,
        None,
    ),
    (
        "SMTP 432 thread limit (Microsoft 365)",
        smtplib.SMTPDataError(432, b"4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
        models.Fault.THROTTLED,
        None,
    ),
    # The service's own trouble, or no answer.
    ("API 500", service_error(500), models.Fault.PASSING, 500),
    ("API 503", service_error(503), models.Fault.PASSING, 503),
    ("API no answer", AnymailAPIError("connection reset"), models.Fault.PASSING, None),
    # The message itself.
    ("API 400", service_error(400), models.Fault.REFUSED, 400),
    ("API 422", service_error(422), models.Fault.REFUSED, 422),
    ("SES 400 message rejected", ses_error(400, "MessageRejected"), models.Fault.REFUSED, 400),
    ("API recipients refused", AnymailRecipientsRefused("all refused"), models.Fault.REFUSED, None),
    # SMTP: the site's login and encryption.
    (
        "SMTP 535 credentials",
        smtplib.SMTPAuthenticationError(535, b"5.7.8 Credentials invalid"),
        models.Fault.SETUP,
        None,
    ),
    (
        "SMTP 530 STARTTLS first",
        smtplib.SMTPResponseException(530, b"5.7.0 Must issue a STARTTLS command first"),
        models.Fault.SETUP,
        None,
    ),
    (
        "STARTTLS not offered",
        smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."),
        models.Fault.SETUP,
        None,
    ),
    (
        "TLS certificate not trusted",
        ssl.SSLCertVerificationError(
            1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
        ),
        models.Fault.SETUP,
        None,
    ),
    (
        "TLS handshake cut",
        ssl.SSLEOFError(
            8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"
        ),
        models.Fault.PASSING,
        None,
    ),
    ("settings", ImproperlyConfigured("EMAIL_URL is not set"), models.Fault.SETUP, None),
    # SMTP: the sender.
    (
        "SMTP 553 sender refused",
        smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", "noreply@example.com"),
        models.Fault.SETUP,
        None,
    ),
    (
        "SMTP 451 sender refused",
        smtplib.SMTPSenderRefused(451, b"4.3.0 Try again", "noreply@example.com"),
        models.Fault.PASSING,
        None,
    ),
    # SMTP: the recipients, all refused (a mail with some accepted is sent; see test_mail_path).
    (
        "SMTP recipients 5xx",
        smtplib.SMTPRecipientsRefused(
            {"a@example.com": (550, b"No such user"), "b@example.com": (553, b"No")}
        ),
        models.Fault.REFUSED,
        None,
    ),
    (
        "SMTP recipients 4xx and 5xx",
        smtplib.SMTPRecipientsRefused(
            {"a@example.com": (550, b"No such user"), "b@example.com": (450, b"Busy")}
        ),
        models.Fault.PASSING,
        None,
    ),
    (
        "SMTP recipients 4xx",
        smtplib.SMTPRecipientsRefused({"a@example.com": (452, b"Mailbox full for now")}),
        models.Fault.PASSING,
        None,
    ),
    # SMTP: the message data.
    (
        "SMTP 552 too big",
        smtplib.SMTPDataError(552, b"5.3.4 Message too big"),
        models.Fault.REFUSED,
        None,
    ),
    (
        "SMTP 451 local error",
        smtplib.SMTPDataError(451, b"4.3.0 Local error"),
        models.Fault.PASSING,
        None,
    ),
    # No answer at all.
    (
        "connection refused",
        ConnectionRefusedError(111, "Connection refused"),
        models.Fault.PASSING,
        None,
    ),
    ("timeout", TimeoutError("timed out"), models.Fault.PASSING, None),
    (
        "server went away",
        smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
        models.Fault.PASSING,
        None,
    ),
    # Not an answer: a message that cannot be sent as it is.
    ("bad message", ValueError("header contains a newline"), models.Fault.REFUSED, None),
]
ANSWER_IDS = [what for what, *_ in ANSWERS]
# What each fault leaves after one attempt, with MAIL_GIVE_UP_AFTER still ahead.
STATE_AFTER = {
    models.Fault.REFUSED: "failed",
    models.Fault.PASSING: "retrying",
    models.Fault.SETUP: "retrying",
    models.Fault.THROTTLED: "held",
}


@pytest.mark.parametrize("what, error, fault, status", ANSWERS, ids=ANSWER_IDS)
def test_each_answer_is_classified(what, error, fault, status):
    assert answers.verdict(error).fault == fault
    if isinstance(error, AnymailAPIError):
        assert answers.api_status(error) == status


@pytest.mark.parametrize("what, error, fault, status", ANSWERS, ids=ANSWER_IDS)
def test_each_answer_leaves_the_mail_as_its_fault_says(
    what, error, fault, status, server, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(sweeper, "release_at", lambda when: None)  # held mail stays held here
    server.errors.append(error)

    with django_capture_on_commit_callbacks(execute=True):
        mail.send_mail("Hello", "Body", None, ["ada@example.com"])

    delivery = models.Delivery.objects.get(email=Email.objects.latest("pk"))
    assert (delivery.fault, delivery.state) == (fault, STATE_AFTER[fault])
    # A throttled answer is not an attempt that failed: nothing counts toward the give-up.
    assert delivery.failed_attempts == (0 if fault == models.Fault.THROTTLED else 1)


@pytest.mark.parametrize(
    "what, error",
    [(what, error) for what, error, fault, _ in ANSWERS if fault == models.Fault.SETUP],
)
def test_a_setup_fault_never_gives_the_mail_up(
    what, error, server, settings, django_capture_on_commit_callbacks
):
    settings.MAIL_GIVE_UP_AFTER = timedelta(0)
    server.errors.append(error)

    with django_capture_on_commit_callbacks(execute=True):
        mail.send_mail("Hello", "Body", None, ["ada@example.com"])

    delivery = models.Delivery.objects.get(email=Email.objects.latest("pk"))
    assert (delivery.fault, delivery.state) == (models.Fault.SETUP, "retrying")
