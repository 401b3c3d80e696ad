"""The email services' tracking webhooks: anymail's own URLs and views, one for each service
the site can send through, each behind `guarded`.

anymail checks the webhook secret (HTTP basic auth, ANYMAIL_WEBHOOK_SECRET) and, where the
service signs its posts, the signature (Mailgun, SendGrid). The guard answers first, with a
status a service understands and a sentence a person does, and writes nothing:

    411  a body without Content-Length (chunked): its size could not be checked first
    413  a body larger than WEBHOOK_MAX_BYTES
    503  the site has no webhook secret (or the service's signing key): closed, the service
         posts again later
    401  no credentials (Amazon SNS sends them only after this challenge)
    403  the wrong credentials, or a signature that does not verify
    400  a body that is not JSON, or JSON the service's view cannot read (`[]`, `"x"`, `1`)

For Amazon SES, whose events come through Amazon SNS, anymail verifies no signature; the
guard verifies SNS's own (`sns_signature_ok`), and takes only the topics listed in
AWS_SNS_TOPIC_ARNS (403 for another, 503 while the list is empty): anybody can make a topic
SNS signs.
"""

import base64
import contextlib
import functools
import json
import logging
import re
import urllib.request

from anymail import urls as anymail_urls
from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailWebhookValidationFailure,
)
from anymail.utils import get_request_basic_auth
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from django.http import HttpResponse
from django.urls import include, path
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from config.transport import KEYS

logger = logging.getLogger(__name__)


def refuse(status, why, headers=None):
    logger.warning("Webhook post refused (%s): %s", status, why)
    return HttpResponse(
        f"{why}\n", status=status, content_type="text/plain; charset=utf-8", headers=headers
    )


def guarded(view):
    """anymail's webhook view behind the checks listed above."""

    @csrf_exempt
    @functools.wraps(view)
    def guard(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)  # anymail answers HEAD and OPTIONS
        refusal = check(request, view.view_class)
        if refusal:
            return refusal
        try:
            return view(request, *args, **kwargs)
        except UnreadableBody as error:
            return refuse(400, f"the body is not what the service posts: {error}")
        except AnymailWebhookValidationFailure as failure:
            return refuse(403, str(failure))
        except AnymailConfigurationError as error:
            return refuse(503, f"the webhook is not set up: {error}")

    return guard


def check(request, view_class):
    """The refusal for a post that must not reach anymail's view, or None."""
    if "content-length" not in request.headers and "transfer-encoding" in request.headers:
        return refuse(411, "a body without a Content-Length header is not taken")
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError:
        return refuse(400, "the Content-Length header is not a number")
    if length > settings.WEBHOOK_MAX_BYTES:
        return refuse(413, f"the body is larger than {settings.WEBHOOK_MAX_BYTES} bytes")
    secret = settings.ANYMAIL.get("WEBHOOK_SECRET")
    if not secret:
        return refuse(503, "the site has no ANYMAIL_WEBHOOK_SECRET: its webhooks are closed")
    given = get_request_basic_auth(request)
    if given is None:
        return refuse(401, "credentials required", {"WWW-Authenticate": 'Basic realm="webhooks"'})
    if not constant_time_compare(given, secret):
        return refuse(403, "wrong credentials")
    try:
        posted = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return refuse(400, "the body is not JSON")
    if issubclass(view_class, AmazonSESTrackingWebhookView):
        if not sns_signature_ok(posted):
            return refuse(403, "the Amazon SNS signature does not verify")
        if not settings.AWS_SNS_TOPIC_ARNS:
            return refuse(503, "the site has no AWS_SNS_TOPIC_ARNS: its SES webhook is closed")
        topic = posted.get("TopicArn")
        if topic not in settings.AWS_SNS_TOPIC_ARNS:
            return refuse(403, f"the SNS topic {topic} is not in AWS_SNS_TOPIC_ARNS")
    return None


class UnreadableBody(Exception):
    """JSON of a shape the service's view cannot read."""


@contextlib.contextmanager
def readable_body():
    try:
        yield
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, AnymailAPIError) as error:
        raise UnreadableBody(f"{type(error).__name__}: {error}") from error


class ReadsWhatItCan:
    """Over anymail's view: a body it cannot check or parse is an UnreadableBody (400), not
    a server error the service would post again for days. Errors in recording the events
    (after parsing) stay server errors."""

    def validate_request(self, request):
        with readable_body():
            super().validate_request(request)

    def parse_events(self, request):
        with readable_body():
            return super().parse_events(request)


def readable(view):
    """anymail's view function, its class under ReadsWhatItCan."""
    view_class = type(view.view_class.__name__, (ReadsWhatItCan, view.view_class), {})
    return view_class.as_view(**view.view_initkwargs)


# What SNS signs, by message type: these fields, in this order, those present.
SNS_SIGNED = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": [
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ],
}
SNS_SIGNED["UnsubscribeConfirmation"] = SNS_SIGNED["SubscriptionConfirmation"]
SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


def sns_signature_ok(message):
    """True if an Amazon SNS message carries SNS's signature: made with the key of a
    certificate that SNS serves (AWS_SNS_CERT_URL, over HTTPS) and that is valid now.
    https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html"""
    if not isinstance(message, dict):
        return False
    fields = SNS_SIGNED.get(message.get("Type"))
    digest = SNS_HASHES.get(str(message.get("SignatureVersion")))
    url = message.get("SigningCertURL")
    if not (fields and digest and isinstance(url, str)):
        return False
    if not re.fullmatch(settings.AWS_SNS_CERT_URL, url):
        logger.warning("SNS message signed with a certificate off SNS: %s", url)
        return False
    signed = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
    try:
        certificate = sns_certificate(url)
        now = timezone.now()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return False
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
        certificate.public_key().verify(signature, signed.encode(), padding.PKCS1v15(), digest())
    except (InvalidSignature, ValueError, TypeError, OSError) as error:
        logger.warning("SNS signature not verified: %r", error)
        return False
    return True


@functools.lru_cache(maxsize=8)
def sns_certificate(url):
    """SNS's signing certificate at `url` (checked against AWS_SNS_CERT_URL), kept."""
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (an SNS URL)
        return x509.load_pem_x509_certificate(answer.read(64 * 1024))


# anymail's tracking webhook URLs for the services of config/transport.py.
TRACKING = {f"{service}_tracking_webhook" for service in KEYS}
patterns = [
    path(str(pattern.pattern), guarded(readable(pattern.callback)), name=pattern.name)
    for pattern in anymail_urls.urlpatterns
    if pattern.name in TRACKING
]
urlpatterns = [path("anymail/", include((patterns, "anymail")))]
