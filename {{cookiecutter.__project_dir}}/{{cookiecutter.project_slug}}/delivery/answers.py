"""What a provider's answer to a failed send means: the message's fault (refused), a passing
trouble, a fault of the site's setup, or throttling, the provider asking the whole site to
slow down (a rate, a connection limit, or a spent daily quota)."""

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from .models import Fault

# SMTP replies about the site's own setup: authentication required, mechanism too weak,
# credentials refused, encryption required.
SETUP_REPLIES = {530, 534, 535, 538}
# The HTTP answers of an email service about the site's key.
SETUP_STATUSES = {401, 403}
# Replies that may be throttling, if their text says so (550: Gmail's daily quota).
THROTTLING_REPLIES = {421, 432, 450, 451, 452, 454, 550, 554}
QUOTA = re.compile(r"quota|daily|per day|sending limit", re.IGNORECASE)
CONNECTIONS = re.compile(
    r"too many connections|connections? limit|concurrent connection|thread limit", re.IGNORECASE
)
THROTTLING = re.compile(
    r"throttl|\brate\b|too many|too much|quota|limit exceeded|server busy", re.IGNORECASE
)
# Gmail's "421 4.7.0 Try again later": a plain "try again later" (greylisting) is passing.
POLICY_DEFERRAL = re.compile(r"^4\.7\.\d+ .*try again later", re.IGNORECASE)
# SES's API: the error codes boto3 reports for its sending limits.
THROTTLING_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException"}
# How long the site pauses on a spent daily quota: SES advises waiting up to 10 minutes.
QUOTA_PAUSE = 600.0


@dataclass(frozen=True)
class Verdict:
    fault: str
    kind: str = ""  # throttled: "rate", "connections" or "quota"
    pause: float | None = None  # seconds the provider asked the site to wait

    @property
    def throttled(self):
        return self.fault == Fault.THROTTLED


def verdict(error):
    """The Verdict on an exception a send raised."""
    if (throttled := throttling(error)) is not None:
        return throttled
    return Verdict(fault_of(error))


def throttling(error):
    """A throttled Verdict if the answer is the provider slowing the site down, else None."""
    if isinstance(error, AnymailAPIError):
        status, code, text = api_status(error), api_error_code(error), str(error)
        if status == 429 or code in THROTTLING_CODES or re.search(r"throttl", text, re.I):
            return throttled(text, retry_after(error))
        return None
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
    elif isinstance(error, smtplib.SMTPResponseException):
        answers = [(error.smtp_code, error.smtp_error)]
    else:
        return None
    for code, answer in answers:
        text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
        if code not in THROTTLING_REPLIES:
            continue
        if code >= 500 and not QUOTA.search(text):
            continue  # a 5xx is the message's fault, but for the daily quota
        if THROTTLING.search(text) or POLICY_DEFERRAL.search(text):
            return throttled(text, None)
    return None


def throttled(text, pause):
    if QUOTA.search(text):
        return Verdict(Fault.THROTTLED, "quota", max(pause or 0.0, QUOTA_PAUSE))
    if CONNECTIONS.search(text):
        return Verdict(Fault.THROTTLED, "connections", pause)
    return Verdict(Fault.THROTTLED, "rate", pause)


def fault_of(error):
    """Whose fault a failed send is: the message's (refused), passing, or the site's setup."""
    if isinstance(error, AnymailRecipientsRefused):
        return Fault.REFUSED
    if isinstance(error, AnymailAPIError):
        status = api_status(error)
        if status in SETUP_STATUSES:
            return Fault.SETUP
        if status is not None and 400 <= status < 500 and status != 429:
            return Fault.REFUSED
        return Fault.PASSING  # no answer, or the service's own trouble (5xx)
    if isinstance(error, ImproperlyConfigured | ssl.SSLCertVerificationError):
        return Fault.SETUP
    if isinstance(error, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError):
        return Fault.SETUP
    if isinstance(error, smtplib.SMTPSenderRefused):
        return Fault.SETUP if error.smtp_code >= 500 else Fault.PASSING
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return Fault.REFUSED if all(code >= 500 for code in codes) else Fault.PASSING
    if isinstance(error, smtplib.SMTPResponseException):
        if error.smtp_code in SETUP_REPLIES:
            return Fault.SETUP
        return Fault.REFUSED if error.smtp_code >= 500 else Fault.PASSING
    if isinstance(error, OSError | smtplib.SMTPException):
        return Fault.PASSING  # no answer: refused connection, timeout, disconnect
    return Fault.REFUSED  # the message itself cannot be sent as it is


def api_status(error):
    """The HTTP status of an email service's answer, or None if it did not answer."""
    if error.status_code is not None:
        return error.status_code
    if isinstance(error.response, dict):  # boto3's parsed answer, from Amazon SES
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def api_error_code(error):
    """The error code in boto3's parsed answer (Amazon SES), or ""."""
    if isinstance(error.response, dict):
        return error.response.get("Error", {}).get("Code", "")
    return ""


def retry_after(error):
    """Seconds an HTTP answer's Retry-After header asks for, or None.
    https://www.rfc-editor.org/rfc/rfc9110#field.retry-after"""
    response = error.response
    if isinstance(response, dict):
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    else:
        headers = getattr(response, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None
