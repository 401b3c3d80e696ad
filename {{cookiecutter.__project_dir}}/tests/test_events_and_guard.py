"""Delivery events as services really post them (late, or naming no message), and the webhook
guard's edges: a body without Content-Length, a service's missing signing key, an expired
SNS certificate."""

import base64
import datetime
import io
import json

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.test import RequestFactory
from django.urls import resolve
from django.utils import timezone
from post_office import mail as post_office

from {{ cookiecutter.project_slug }}.recipients import models, webhooks

from tests import sns

pytestmark = pytest.mark.django_db

SECRET = "webhook:s3cret"
AUTH = "Basic " + base64.b64encode(SECRET.encode()).decode()


@pytest.fixture
def service(settings):
    """anymail's test backend as the transport: it gives each recipient a message id."""
    settings.MAILERS = {
        **settings.MAILERS,
        "transport": {"BACKEND": "anymail.backends.test.EmailBackend"},
    }
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}


@pytest.fixture
def ada(service, committed):
    """The recipient of a mail the site sent through the service."""
    with committed():
        email = post_office.send(["ada@example.com"], subject="Hi", message="Body")
    return models.Recipient.objects.get(email=email)


def post_event(kind, recipient, message_id, at, **kwargs):
    event = AnymailTrackingEvent(
        event_type=kind,
        recipient=recipient,
        message_id=message_id,
        timestamp=at,
        esp_event={},
        **kwargs,
    )
    tracking.send(sender=None, event=event, esp_name="Test")


def test_an_older_event_arriving_late_does_not_replace_the_last_event(ada):
    now = timezone.now()
    post_event("delivered", ada.address, ada.message_id, now, event_id="new")
    post_event("deferred", ada.address, ada.message_id, now - datetime.timedelta(minutes=5))

    ada.refresh_from_db()
    assert (ada.last_event, ada.last_event_at) == ("delivered", now)
    assert ada.events.count() == 2  # the late one is kept in the history


@pytest.mark.parametrize(
    "recipient, message_id", [("ada@example.com", None), (None, "known"), ("", "")]
)
def test_an_event_naming_no_message_or_no_recipient_writes_nothing(ada, recipient, message_id):
    message_id = ada.message_id if message_id == "known" else message_id

    post_event("bounced", recipient, message_id, timezone.now())

    ada.refresh_from_db()
    assert (ada.last_event, ada.bounced) == ("", False)
    assert not models.Event.objects.exists()
    assert not models.Suppression.objects.exists()


def webhook_post(url, body, **headers):
    """A POST as a WSGI server hands it to Django, with exactly these headers."""
    request = RequestFactory().generic("POST", url, b"", HTTP_AUTHORIZATION=AUTH, **headers)
    request.META.pop("CONTENT_LENGTH", None)
    request.META["wsgi.input"] = io.BytesIO(body)
    if "CONTENT_LENGTH" in headers:
        request.META["CONTENT_LENGTH"] = headers["CONTENT_LENGTH"]
    request._stream = None
    return resolve(url).func(request)


@pytest.mark.parametrize("size", [100, 2_000_000])
def test_a_body_without_content_length_is_refused_whatever_its_size(service, size):
    body = json.dumps({"RecordType": "Delivery", "pad": "x" * size}).encode()

    answer = webhook_post("/anymail/postmark/tracking/", body, HTTP_TRANSFER_ENCODING="chunked")

    assert answer.status_code == 411
    assert b"Content-Length" in answer.content
    assert not models.Event.objects.exists()


def test_a_body_over_the_limit_is_refused_by_its_content_length(service, settings):
    body = json.dumps({"pad": "x" * settings.WEBHOOK_MAX_BYTES}).encode()

    answer = webhook_post("/anymail/postmark/tracking/", body, CONTENT_LENGTH=str(len(body)))

    assert answer.status_code == 413


@pytest.mark.parametrize(
    "provider",
    [
        "mailgun",
        pytest.param(
            "sendgrid",
            marks=pytest.mark.xfail(
                strict=True, reason="anymail takes SendGrid's posts unsigned when it has no key"
            ),
        ),
    ],
)
def test_a_service_whose_signing_key_is_missing_gets_503(service, client, provider):
    answer = client.post(
        f"/anymail/{provider}/tracking/",
        "[]" if provider == "sendgrid" else "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=AUTH,
    )

    assert answer.status_code == 503
    assert b"not set up" in answer.content


@pytest.mark.parametrize(
    "valid_days, verifies",
    [((-1, 1), True), ((-30, -1), False), ((1, 30), False)],
    ids=["valid now", "expired", "not valid yet"],
)
def test_an_sns_certificate_counts_only_while_it_is_valid(
    service, client, monkeypatch, valid_days, verifies
):
    key, certificate = sns.key_and_certificate(valid_days)
    message = sns.signed(key)
    monkeypatch.setattr(webhooks, "sns_certificate", lambda url: certificate)

    assert webhooks.sns_signature_ok(message) is verifies
    if not verifies:
        answer = client.post(
            "/anymail/amazon_ses/tracking/",
            json.dumps(message),
            content_type="application/json",
            HTTP_AUTHORIZATION=AUTH,
        )
        assert answer.status_code == 403
        assert not models.Event.objects.exists()
