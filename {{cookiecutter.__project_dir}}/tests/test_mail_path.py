"""send_mail() → post_office row → Celery task → mail server, and the status it leaves."""

import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from djcelery_email.tasks import send_emails
from kombu.exceptions import OperationalError
from post_office import mail as post_office
from post_office.models import STATUS, Email

from {{ cookiecutter.project_slug }}.delivery import handoff

from tests.samples import TEMPLATE_LIKE_SUBJECT

pytestmark = pytest.mark.django_db


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """Send like a view does, and run what happens once the request commits."""

    def send(subject="Hello", to="ada@example.com", **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            message = mail.EmailMultiAlternatives(subject, "Plain body", to=[to], **kwargs)
            message.attach_alternative("<p>HTML body</p>", "text/html")
            message.send()
        return Email.objects.latest("pk")

    return send


def sweep():
    call_command("send_queued_mail", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_a_sent_mail_is_delivered_and_recorded_as_sent(send):
    email = send(subject="Welcome")

    [delivered] = mail.outbox
    assert delivered.subject == "Welcome"
    assert delivered.alternatives[0].content == "<p>HTML body</p>"
    email.refresh_from_db()
    assert email.status == STATUS.sent
    assert [log.status for log in email.logs.all()] == [STATUS.sent]
    assert delivered.extra_headers["Message-ID"] == email.message_id


def test_attachments_keep_their_bytes_and_declared_type(send):
    pdf = b"%PDF-1.4\n\x00\xff\xfe binary"
    send(attachments=[("report.pdf", pdf, "application/pdf")])

    [delivered] = mail.outbox
    [attachment] = delivered.attachments
    assert tuple(attachment) == ("report.pdf", pdf, "application/pdf")


@pytest.mark.django_db(transaction=True)
def test_only_mail_from_a_committed_transaction_is_delivered():
    with pytest.raises(RuntimeError), transaction.atomic():
        mail.send_mail("Rolled back", "Body", None, ["ada@example.com"])
        raise RuntimeError("the request failed")
    with transaction.atomic():
        mail.send_mail("Committed", "Body", None, ["ada@example.com"])

    assert [message.subject for message in mail.outbox] == ["Committed"]
    assert list(Email.objects.values_list("subject", flat=True)) == ["Committed"]


def test_a_passing_failure_is_counted_and_retried(send, server):
    server.errors.append(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    email = send()

    assert mail.outbox == []
    email.refresh_from_db()
    assert (email.status, email.number_of_retries) == (STATUS.requeued, 1)
    assert email.scheduled_time > timezone.now()
    [log] = email.logs.all()
    assert (log.status, log.exception_type) == (STATUS.failed, "SMTPServerDisconnected")

    # Celery retries it after MAIL_RETRY_INTERVAL (a test worker runs tasks in
    # place and skips that); the sweeper steps in if that retry never comes.
    Email.objects.filter(pk=email.pk).update(scheduled_time=timezone.now())
    sweep()
    assert len(mail.outbox) == 1
    email.refresh_from_db()
    assert email.status == STATUS.sent


def test_a_refusal_fails_the_mail_at_once_with_the_servers_answer(send, server):
    server.errors.append(smtplib.SMTPDataError(554, b"Message rejected as spam"))

    email = send()

    assert mail.outbox == []
    email.refresh_from_db()
    assert email.status == STATUS.failed
    [log] = email.logs.all()
    assert "Message rejected as spam" in log.message


def test_after_the_last_celery_retry_the_sweeper_takes_over(server, settings):
    email = post_office.send("ada@example.com", subject="Hello", message="Body")
    server.errors.append(ConnectionRefusedError("refused"))

    last_retry = settings.MAIL_MAX_RETRIES
    message = handoff.task_message(email)
    send_emails.apply(((message,), {}), {"using": "deliver"}, retries=last_retry)

    email.refresh_from_db()
    assert email.status == STATUS.requeued
    retry_at = timezone.now() + timedelta(seconds=settings.MAIL_RETRY_INTERVAL)
    assert abs(email.scheduled_time - retry_at) < timedelta(seconds=5)


def test_a_mail_still_failing_after_the_give_up_time_is_failed(send, server, settings):
    settings.MAIL_GIVE_UP_AFTER = timedelta(0)
    server.errors.append(ConnectionRefusedError("refused"))

    email = send()

    email.refresh_from_db()
    assert email.status == STATUS.failed
    assert "gave up" in email.logs.get().message


def test_a_mail_queued_while_the_broker_is_down_is_sent_by_the_sweeper(send, monkeypatch):
    with monkeypatch.context() as broker_down:
        broker_down.setattr(send_emails, "apply_async", refuse_connection)
        email = send()

    email.refresh_from_db()
    assert (email.status, mail.outbox) == (STATUS.queued, [])
    monkeypatch.setattr(handoff, "_broker_paused_until", 0.0)
    sweep()
    assert len(mail.outbox) == 1


def refuse_connection(*args, **kwargs):
    raise OperationalError("[Errno 111] Connection refused")


def test_a_mail_handed_out_twice_is_sent_once(send):
    email = send()

    send_emails((handoff.task_message(email),), {}, using="deliver")

    assert len(mail.outbox) == 1


def test_a_scheduled_mail_waits_for_its_time(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email = post_office.send(
            "ada@example.com",
            subject="Later",
            message="Body",
            scheduled_time=timezone.now() + timedelta(hours=1),
        )
    sweep()
    assert mail.outbox == []

    Email.objects.filter(pk=email.pk).update(scheduled_time=timezone.now())
    sweep()
    assert len(mail.outbox) == 1


def test_an_expired_mail_is_failed_not_sent():
    email = post_office.send(
        "ada@example.com", subject="Too late", message="Body", expires_at=timezone.now()
    )

    sweep()

    assert mail.outbox == []
    email.refresh_from_db()
    assert email.status == STATUS.failed
    assert "expired" in email.logs.get().message


def test_a_mail_whose_worker_died_is_sent_again(settings):
    email = post_office.send("ada@example.com", subject="Interrupted", message="Body")
    long_ago = timezone.now() - settings.MAIL_SENDING_TIMEOUT - timedelta(seconds=1)
    Email.objects.filter(pk=email.pk).update(status=None, last_updated=long_ago)

    sweep()

    assert len(mail.outbox) == 1
    email.refresh_from_db()
    assert email.status == STATUS.sent
    assert email.logs.filter(exception_type="Interrupted").exists()


def test_text_is_sent_as_written_not_rendered_as_a_template(send):
    send(subject=TEMPLATE_LIKE_SUBJECT)

    [delivered] = mail.outbox
    assert delivered.subject == TEMPLATE_LIKE_SUBJECT


def test_a_bad_address_is_refused_when_sending_and_nothing_is_recorded():
    with pytest.raises(ValidationError, match="not-an-address"):
        mail.send_mail("Hello", "Body", None, ["not-an-address"])

    assert not Email.objects.exists()
