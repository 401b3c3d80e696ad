"""Past "sent": the provider's message ids kept per recipient, delivery events recorded once,
the suppression list (fed by events, SMTP refusals and staff), and one-click unsubscribe."""

import base64
import email.policy
import json

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from post_office import mail as post_office
from post_office.models import Email

from {{ cookiecutter.project_slug }}.delivery.models import Delivery
from {{ cookiecutter.project_slug }}.recipients import (
    models,
    suppression,
    unsubscribe,
    webhooks,
)

from tests import sns

pytestmark = pytest.mark.django_db

SECRET = "webhook:s3cret"


@pytest.fixture
def send(committed):
    def send(to, headers=None, **kwargs):
        with committed():
            return post_office.send(to, subject="Hi", message="Body", headers=headers, **kwargs)

    return send


@pytest.fixture
def service(settings):
    """anymail's test backend as the transport: it gives each recipient a message id."""
    settings.MAILERS = {
        **settings.MAILERS,
        "transport": {"BACKEND": "anymail.backends.test.EmailBackend"},
    }
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}


def event(kind, recipient, message_id, **kwargs):
    return AnymailTrackingEvent(
        event_type=kind, recipient=recipient, message_id=message_id, esp_event={}, **kwargs
    )


def test_the_worker_keeps_the_services_message_id_for_each_recipient(send, service):
    email = send(["ada@example.com", "bob@example.com"])

    recipients = {r.address: r for r in models.Recipient.objects.filter(email=email)}
    assert set(recipients) == {"ada@example.com", "bob@example.com"}
    assert {r.provider for r in recipients.values()} == {"Test"}
    assert all(r.message_id for r in recipients.values())


def test_an_event_is_recorded_once_and_a_hard_bounce_suppresses(send, service):
    email = send(["ada@example.com"])
    ada = models.Recipient.objects.get(email=email)
    bounce = event("bounced", "Ada@Example.com", ada.message_id, event_id="e1", mta_response="550")

    tracking.send(sender=None, event=bounce, esp_name="Test")
    tracking.send(sender=None, event=bounce, esp_name="Test")

    ada.refresh_from_db()
    assert (ada.last_event, ada.bounced, ada.last_said) == ("bounced", True, "550")
    assert ada.events.count() == 1
    [row] = models.Suppression.objects.all()
    assert (row.address, row.scope, row.reason) == ("ada@example.com", "all", "hard_bounce")
    assert row.event == ada.events.get()


def test_an_event_for_a_message_the_site_did_not_send_changes_nothing(service):
    tracking.send(sender=None, event=event("complained", "x@example.com", "nope"), esp_name="Test")

    assert not models.Suppression.objects.exists()


def test_a_suppressed_recipient_is_withheld_and_the_others_get_the_mail(send):
    suppression.suppress("Bob@Example.com", "complaint", detail="Postmark: spam")

    email = send(["ada@example.com", "Bob <bob@example.com>"])

    [delivered] = mail.outbox
    assert delivered.to == ["ada@example.com"]
    delivery = Delivery.objects.get(email_id=email.pk)
    assert delivery.state == "sent"
    assert "suppressed since" in delivery.refused["Bob <bob@example.com>"]
    assert "Postmark: spam" in delivery.refused["Bob <bob@example.com>"]


def test_a_mail_whose_every_recipient_is_suppressed_fails_without_a_send(send):
    suppression.suppress("ada@example.com", "hard_bounce")

    email = send(["ada@example.com"])

    assert mail.outbox == []
    delivery = Delivery.objects.get(email_id=email.pk)
    assert (delivery.state, delivery.fault) == ("failed", "refused")
    assert "ada@example.com suppressed since" in delivery.reason
    assert Email.objects.get(pk=email.pk).logs.get().message.startswith("refused: not sent")


def test_a_bulk_only_suppression_leaves_transactional_mail_alone(send):
    suppression.suppress("ada@example.com", "one_click", scope="bulk")

    send(["ada@example.com"])
    send(["ada@example.com"], headers={"Precedence": "bulk"})

    assert len(mail.outbox) == 1
    assert "Precedence" not in mail.outbox[0].extra_headers


def test_smtp_refusals_with_the_chosen_codes_suppress(send, server, settings):
    settings.MAIL_SUPPRESS_SMTP_CODES = [551]
    server.refusals.append(
        {"gone@example.com": (551, b"5.1.6 moved"), "full@example.com": (550, b"5.2.2 full")}
    )

    send(["ok@example.com", "gone@example.com", "full@example.com"])

    assert list(models.Suppression.objects.values_list("address", "reason", "detail")) == [
        ("gone@example.com", "smtp_refusal", "551 5.1.6 moved")
    ]


def test_bulk_mail_carries_one_click_unsubscribe_and_transactional_mail_does_not(send, settings):
    settings.SITE_URL = "https://mail.example.com"
    settings.UNSUBSCRIBE_MAILTO = "leave@example.com"

    send(["ada@example.com"], headers={"Precedence": "bulk"})
    send(["ada@example.com"])

    bulk, transactional = mail.outbox
    link, mailto = bulk.extra_headers["List-Unsubscribe"].split(", ")
    assert link.startswith("<https://mail.example.com/unsubscribe/")
    assert mailto == "<mailto:leave@example.com?subject=unsubscribe%20ada%40example.com>"
    assert bulk.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe" not in transactional.extra_headers


def test_the_one_click_post_suppresses_bulk_mail_for_the_tokens_address_only(client):
    url = f"/unsubscribe/{unsubscribe.token_for('ada@example.com')}/"

    assert client.get(url).status_code == 200
    assert not models.Suppression.objects.exists(), "a GET (a link checker) unsubscribes nobody"
    answer = client.post(url, {"List-Unsubscribe": "One-Click"})

    assert answer.status_code == 200
    assert list(models.Suppression.objects.values_list("address", "scope", "reason")) == [
        ("ada@example.com", "bulk", "one_click")
    ]


def test_a_forged_or_altered_token_is_refused_and_writes_nothing(client):
    token = unsubscribe.token_for("ada@example.com")
    forged = [token[:-2] + "xx", token[:-1], "bob@example.com", "YWRhQGV4YW1wbGUuY29t"]

    answers = [client.post(f"/unsubscribe/{t}/", {"List-Unsubscribe": "One-Click"}) for t in forged]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
    assert not models.Suppression.objects.exists()


def test_a_token_is_random_names_nobody_and_stays_the_same_for_its_address():
    token = unsubscribe.token_for("Ada@Example.com")

    assert token == unsubscribe.token_for("ada@example.com")
    assert token != unsubscribe.token_for("bob@example.com")
    assert len(token) == 22  # 128 random bits
    for text in (token, base64.urlsafe_b64decode(token + "==").decode("latin-1")):
        assert "ada" not in text.lower()


def test_one_click_headers_reach_the_mail_server_unencoded_on_one_line(send, settings):
    """What Django's SMTP mailer sends: the message as bytes in the SMTP policy (78-character
    lines), with a SITE_URL long enough that the link cannot fit 78."""
    settings.SITE_URL = "https://" + "mail." * 12 + "example.com"
    settings.UNSUBSCRIBE_MAILTO = "leave@example.com"
    send(["ada@example.com"], headers={"Precedence": "bulk"})

    sent = mail.outbox[0].message(policy=email.policy.SMTP).as_bytes()

    url = f"{settings.SITE_URL}/unsubscribe/{unsubscribe.token_for('ada@example.com')}/"
    mailto = "<mailto:leave@example.com?subject=unsubscribe%20ada%40example.com>"
    assert f"\r\nList-Unsubscribe: <{url}>, {mailto}\r\n".encode() in sent
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in sent
    # The From may be an encoded word (a name in any script); these headers never are.
    lines = [line for line in sent.split(b"\r\n") if line.lower().startswith(b"list-unsubscribe")]
    assert len(lines) == 2 and not any(b"=?" in line for line in lines)


def test_a_one_click_post_without_its_field_or_too_large_is_refused(client):
    url = f"/unsubscribe/{unsubscribe.token_for('ada@example.com')}/"

    assert client.post(url, {"other": "x"}).status_code == 400
    assert client.post(url, {"List-Unsubscribe": "One-Click", "pad": "x" * 2000}).status_code == 413
    assert not models.Suppression.objects.exists()


def test_staff_lift_a_suppression_and_the_admin_logs_it(admin_client, admin_user):
    row = suppression.suppress("ada@example.com", "complaint")

    page = admin_client.get("/admin/recipients/suppression/").content.decode()
    assert "ada@example.com" in page
    admin_client.post(
        "/admin/recipients/suppression/", {"action": "lift", "_selected_action": [row.pk]}
    )

    row.refresh_from_db()
    assert row.lifted is not None and row.lifted_by == admin_user
    assert LogEntry.objects.get().change_message == "Lifted the suppression of ada@example.com"
    assert suppression.suppressed(["ada@example.com"], bulk=True) == {}


def test_staff_add_an_address_by_hand(admin_client, admin_user):
    admin_client.post(
        "/admin/recipients/suppression/add/",
        {"address": " Eve@Example.com", "scope": "all", "detail": "asked by phone"},
    )

    row = models.Suppression.objects.get()
    assert (row.address, row.reason, row.created_by) == ("eve@example.com", "by_hand", admin_user)


# --- Amazon SNS signatures -------------------------------------------------------------


@pytest.fixture(scope="module")
def sns_key():
    return sns.key_and_certificate()


@pytest.fixture
def sns_serves(sns_key, monkeypatch):
    fetched = []

    def certificate(url):
        fetched.append(url)
        return sns_key[1]

    monkeypatch.setattr(webhooks, "sns_certificate", certificate)
    return fetched


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_sns_message_signed_by_sns_verifies(sns_key, sns_serves, version):
    assert webhooks.sns_signature_ok(sns.signed(sns_key[0], version, Subject="Amazon SES"))
    assert sns_serves == [sns.CERT_URL]


def test_an_altered_or_unsigned_sns_message_does_not_verify(sns_key, sns_serves):
    altered = {**sns.signed(sns_key[0]), "Message": '{"eventType": "Bounce"}'}
    unsigned = {**sns.signed(sns_key[0]), "Signature": ""}
    unknown_version = sns.signed(sns_key[0], SignatureVersion="3")

    assert not webhooks.sns_signature_ok(altered)
    assert not webhooks.sns_signature_ok(unsigned)
    assert not webhooks.sns_signature_ok(unknown_version)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
    ],
)
def test_a_certificate_off_sns_is_not_even_fetched(sns_key, sns_serves, url):
    assert not webhooks.sns_signature_ok(sns.signed(sns_key[0], SigningCertURL=url))
    assert sns_serves == []


def test_the_webhooks_are_closed_without_a_secret(client, settings):
    settings.ANYMAIL = {}

    answer = client.post("/anymail/postmark/tracking/", "{}", content_type="application/json")

    assert answer.status_code == 503
    assert b"ANYMAIL_WEBHOOK_SECRET" in answer.content


def basic_auth(secret=SECRET):
    return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}


def post_to(client, service, body, headers=None):
    return client.post(
        f"/anymail/{service}/tracking/",
        body,
        content_type="application/json",
        headers={**basic_auth(), **(headers or {})},
    )


def sns_post(client, message):
    headers = {
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
    }
    return post_to(client, "amazon_ses", json.dumps(message), headers)


SES_DELIVERY = {
    "eventType": "Delivery",
    "mail": {
        "timestamp": "2026-01-01T00:00:00.000Z",
        "messageId": "0100018c-ses-id",
        "destination": ["ada@example.com"],
    },
    "delivery": {"timestamp": "2026-01-01T00:00:01.000Z", "recipients": ["ada@example.com"]},
}


def test_sns_messages_are_taken_only_from_the_listed_topics(
    client, service, settings, sns_key, sns_serves
):
    ours = "arn:aws:sns:eu-west-1:123456789012:ses-events"
    message = sns.signed(sns_key[0], Message=json.dumps(SES_DELIVERY), TopicArn=ours)
    another = sns.signed(
        sns_key[0],
        Message=json.dumps(SES_DELIVERY),
        TopicArn="arn:aws:sns:eu-west-1:999999999999:not-ours",
    )

    settings.AWS_SNS_TOPIC_ARNS = []
    closed = sns_post(client, message)
    assert (closed.status_code, b"AWS_SNS_TOPIC_ARNS" in closed.content) == (503, True)
    settings.AWS_SNS_TOPIC_ARNS = [ours]
    refused = sns_post(client, another)
    assert (refused.status_code, b"not-ours is not in AWS_SNS_TOPIC_ARNS" in refused.content) == (
        403,
        True,
    )
    assert sns_post(client, message).status_code == 200


# Well-formed JSON of a shape each service never posts (SendGrid posts a list of events:
# an empty one is a batch of none).
WRONG_SHAPES = {
    "brevo": ["[]", '"x"', "1", "null", '["x"]'],
    "mailgun": ["[]", '"x"', "1", "null", '{"signature": "x"}'],
    "postmark": ["[]", '"x"', "1", "null", '["x"]'],
    "sendgrid": ['"x"', "1", "null", '["x"]', "[1]"],
}


@pytest.mark.parametrize(
    "service_name, body",
    [(name, body) for name, bodies in WRONG_SHAPES.items() for body in bodies],
)
def test_json_a_webhook_cannot_read_is_a_400_and_writes_nothing(
    client, service, settings, service_name, body
):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": "key"}

    answer = post_to(client, service_name, body)

    assert answer.status_code == 400, answer.content
    assert b"not what the service posts" in answer.content
    assert not models.Event.objects.exists()


# A complaint as each service documents it, for a message whose id the site kept in the form
# the service's send API answered: (service, kept, the event's payload).
COMPLAINTS = {
    # Brevo's transactional webhook, "spam": its docs' sample, with a bare message-id; the
    # send API answered "<...>".
    "Brevo": (
        "brevo",
        "<202612060001.12345678901@smtp-relay.mailin.fr>",
        {
            "event": "spam",
            "email": "ada@example.com",
            "id": 1,
            "date": "2026-12-06 00:00:00",
            "ts": 1796515200,
            "message-id": "202612060001.12345678901@smtp-relay.mailin.fr",
            "ts_event": 1796515200,
            "subject": "Hi",
            "tag": "",
            "sending_ip": "185.41.28.109",
            "ts_epoch": 1796515200000,
        },
    ),
    # The same, should Brevo post it with its brackets.
    "Brevo in brackets": (
        "brevo",
        "<202612060001.12345678901@smtp-relay.mailin.fr>",
        {
            "event": "spam",
            "email": "ada@example.com",
            "date": "2026-12-06 00:00:00",
            "message-id": "<202612060001.12345678901@smtp-relay.mailin.fr>",
            "ts_epoch": 1796515200000,
        },
    ),
    # Postmark's SpamComplaint webhook: a bare UUID both ways.
    "Postmark": (
        "postmark",
        "00000000-0000-0000-0000-000000000000",
        {
            "RecordType": "SpamComplaint",
            "MessageStream": "outbound",
            "ID": 42,
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Name": "Spam complaint",
            "Tag": "",
            "MessageID": "00000000-0000-0000-0000-000000000000",
            "Metadata": {},
            "ServerID": 23,
            "Description": "The subscriber explicitly marked this message as spam.",
            "Details": "Test spam complaint details",
            "Email": "ada@example.com",
            "From": "sender@example.com",
            "BouncedAt": "2026-12-06T00:00:00Z",
            "DumpAvailable": True,
            "Inactive": True,
            "CanActivate": False,
            "Subject": "Hi",
        },
    ),
}


ESP_NAMES = {"brevo": "Brevo", "postmark": "Postmark"}


@pytest.mark.parametrize("service_name, kept, payload", COMPLAINTS.values(), ids=COMPLAINTS.keys())
def test_a_complaint_in_the_services_documented_form_suppresses_its_address(
    client, service, service_name, kept, payload
):
    email = post_office.send("ada@example.com", subject="Hi", message="Body")
    models.Recipient.objects.create(
        email=email, address="ada@example.com", provider=ESP_NAMES[service_name], message_id=kept
    )

    assert post_to(client, service_name, json.dumps(payload)).status_code == 200

    assert list(models.Suppression.objects.values_list("address", "reason")) == [
        ("ada@example.com", "complaint")
    ]


def test_a_kept_message_id_loses_its_brackets_and_is_found_in_either_form(send, service):
    email = send(["ada@example.com"])
    recipient = models.Recipient.objects.get(email=email)
    models.Recipient.objects.filter(pk=recipient.pk).update(message_id=" <abc@relay.example> ")

    assert models.Recipient.objects.get(pk=recipient.pk).message_id == "abc@relay.example"
    for form in ("abc@relay.example", "<abc@relay.example>"):
        assert models.Recipient.objects.filter(message_id=form).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_takes_the_brackets_off_the_kept_message_ids():
    executor = MigrationExecutor(connection)
    before, after = [("recipients", "0002_unsubscribe_links")], executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    email = old.get_model("post_office", "Email").objects.create(from_email="site@example.com")
    old.get_model("recipients", "Recipient").objects.create(
        email=email, address="ada@example.com", provider="Brevo", message_id="<x.1@relay.example>"
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    assert list(models.Recipient.objects.values_list("message_id", flat=True)) == [
        "x.1@relay.example"
    ]
