"""send_mail() → post_office row → Celery task → mail server, and the state it leaves."""

import smtplib
from datetime import timedelta
from email import message_from_bytes
from email.message import MIMEPart

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djcelery_email.tasks import send_emails
from kombu.exceptions import OperationalError
from post_office import mail as post_office
from post_office.models import STATUS, Email

from {{ cookiecutter.project_slug }}.delivery import handoff, task
from {{ cookiecutter.project_slug }}.delivery.models import Delivery
from {{ cookiecutter.project_slug }}.recipients import suppression

from config.mail import MAIL_ID_ATTRIBUTE, SENDER_MAILER
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


def state_of(email):
    return Delivery.objects.get(email_id=email.pk)


def time_passes(email):
    """The clock reaches the moment the sweeper is due to act on the mail."""
    Delivery.objects.filter(email_id=email.pk).update(due=timezone.now())


def test_a_sent_mail_is_delivered_and_recorded_as_sent(send):
    email = send(subject="Welcome")

    [delivered] = mail.outbox
    assert delivered.subject == "Welcome"
    assert delivered.alternatives[0].content == "<p>HTML body</p>"
    assert state_of(email).state == "sent"
    email.refresh_from_db()
    assert email.status == STATUS.sent
    assert [log.status for log in email.logs.all()] == [STATUS.sent]
    assert delivered.extra_headers["Message-ID"] == email.message_id


def test_a_tasks_mails_are_read_and_looked_up_on_the_suppression_list_in_one_query(committed):
    suppression.suppress("mail3@example.com", "hard_bounce")

    with CaptureQueriesContext(connection) as queries, committed():
        post_office.send_many(  # mails queued together go out in one task
            [
                {"recipients": [f"mail{n}@example.com"], "subject": f"Mail {n}", "message": "Hi"}
                for n in range(10)
            ]
        )

    assert sorted(delivered.to[0] for delivered in mail.outbox) == sorted(
        f"mail{n}@example.com" for n in range(10) if n != 3
    )
    reads = [query for query in queries if query["sql"].startswith("SELECT")]
    assert len([query for query in reads if 'FROM "post_office_email"' in query["sql"]]) == 1
    assert len([query for query in reads if "_suppression" in query["sql"]]) == 1


def test_attachments_keep_their_bytes_and_declared_type(send):
    pdf = b"%PDF-1.4\n\x00\xff\xfe binary"
    send(attachments=[("report.pdf", pdf, "application/pdf")])

    [delivered] = mail.outbox
    [attachment] = delivered.attachments
    assert tuple(attachment) == ("report.pdf", pdf, "application/pdf")


def test_inline_images_sharing_a_name_or_without_one_all_arrive(send):
    images = [(b"first", "logo.png"), (b"second", "logo.png"), (b"third", None)]
    parts = []
    for number, (content, name) in enumerate(images):
        part = MIMEPart()
        part.set_content(content, "image", "png", disposition="inline", filename=name)
        part["Content-ID"] = f"<image{number}>"
        parts.append(part)

    send(attachments=parts)

    [delivered] = mail.outbox
    sent = message_from_bytes(delivered.message().as_bytes())
    got = {part["Content-ID"]: part.get_payload(decode=True) for part in sent.walk()}
    assert [got.get(f"<image{n}>") for n in range(3)] == [b"first", b"second", b"third"]


def test_a_task_names_the_mail_and_carries_nothing_else():
    email = post_office.send("ada@example.com", subject="Secret", message="Body")

    carried = task.message(email.pk, email.message_id)

    assert "Secret" not in str(carried) and "ada@example.com" not in str(carried)
    assert (carried[MAIL_ID_ATTRIBUTE], carried["headers"]) == (
        email.pk,
        {task.MESSAGE_ID_HEADER: email.message_id},
    )


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
    delivery = state_of(email)
    assert (delivery.state, delivery.failed_attempts, delivery.fault) == ("retrying", 1, "passing")
    assert delivery.due > timezone.now()
    email.refresh_from_db()
    assert (email.status, email.number_of_retries) == (STATUS.requeued, 1)
    [log] = email.logs.all()
    assert (log.status, log.exception_type) == (STATUS.failed, "SMTPServerDisconnected")
    assert log.message.startswith("retrying, next attempt at ")

    # Celery retries it after MAIL_RETRY_INTERVAL (a test worker runs tasks in
    # place and skips that); the sweeper steps in if that retry never comes.
    time_passes(email)
    sweep()
    assert len(mail.outbox) == 1
    assert state_of(email).state == "sent"


def test_a_refusal_fails_the_mail_at_once_with_the_servers_answer(send, server):
    server.errors.append(smtplib.SMTPDataError(554, b"Message rejected as spam"))

    email = send()

    assert mail.outbox == []
    delivery = state_of(email)
    assert (delivery.state, delivery.fault) == ("failed", "refused")
    assert "Message rejected as spam" in delivery.reason
    assert "Message rejected as spam" in email.logs.get().message


def test_a_partial_refusal_sends_to_the_others_and_names_each_refused_address(server, committed):
    server.refusals.append({"refuse@example.com": (550, b"5.1.1 No such user")})

    with committed():
        email = post_office.send(
            ["ok@example.com", "refuse@example.com"], subject="Hi", message="Body"
        )

    assert len(mail.outbox) == 1
    delivery = state_of(email)
    assert delivery.state == "sent"
    assert delivery.refused == {"refuse@example.com": "550 5.1.1 No such user"}
    assert email.logs.get().message == "refused refuse@example.com: 550 5.1.1 No such user"


@pytest.mark.parametrize(
    "error",
    [
        smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"),
        smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", "noreply@example.com"),
    ],
    ids=["wrong password", "sender not allowed"],
)
def test_a_fault_of_the_sites_setup_keeps_the_mail_waiting_even_when_it_is_old(
    send, server, settings, error
):
    settings.MAIL_GIVE_UP_AFTER = timedelta(0)
    server.errors.append(error)

    email = send()

    delivery = state_of(email)
    assert (delivery.state, delivery.fault) == ("retrying", "setup")
    assert email.logs.get().message.startswith("setup, next attempt at ")
    time_passes(email)
    sweep()  # the setup is fixed
    assert state_of(email).state == "sent"


def test_after_the_last_celery_retry_the_sweeper_takes_over(server, settings):
    email = post_office.send("ada@example.com", subject="Hello", message="Body")
    Delivery.objects.filter(email_id=email.pk).update(state="retrying")
    server.errors.append(ConnectionRefusedError("refused"))

    last_retry = settings.MAIL_MAX_RETRIES
    message = task.message(email.pk, email.message_id)
    send_emails.apply(((message,), {}), {"using": SENDER_MAILER}, retries=last_retry)

    delivery = state_of(email)
    assert delivery.state == "retrying"
    retry_at = timezone.now() + timedelta(seconds=settings.MAIL_RETRY_INTERVAL)
    assert abs(delivery.due - retry_at) < timedelta(seconds=5)


def test_a_mail_still_failing_after_the_give_up_time_is_failed(send, server, settings):
    settings.MAIL_GIVE_UP_AFTER = timedelta(0)
    server.errors.append(ConnectionRefusedError("refused"))

    email = send()

    assert state_of(email).state == "failed"
    assert email.logs.get().message.startswith("gave up")


def test_the_give_up_age_counts_from_a_mail_s_scheduled_time(server):
    """A mail scheduled further ahead than MAIL_GIVE_UP_AFTER gets its retries at its time."""
    now = timezone.now()
    email = post_office.send(
        "ada@example.com",
        subject="Next week",
        message="Body",
        scheduled_time=now + timedelta(days=4),
    )
    # Four days later its time comes, and the server answers "try again later".
    Email.objects.filter(pk=email.pk).update(created=now - timedelta(days=4), scheduled_time=now)
    time_passes(email)
    server.errors.append(smtplib.SMTPDataError(451, b"4.3.0 Try again later"))

    sweep()

    delivery = state_of(email)
    assert (delivery.state, delivery.failed_attempts) == ("retrying", 1)


def test_a_mail_queued_while_the_broker_is_down_is_sent_by_the_sweeper(send, monkeypatch):
    with monkeypatch.context() as broker_down:
        broker_down.setattr(send_emails, "apply_async", refuse_connection)
        email = send()

    delivery = state_of(email)
    assert (delivery.state, mail.outbox) == ("queued", [])
    assert delivery.due <= timezone.now(), "due for the sweeper's next run"
    monkeypatch.setattr(handoff, "_broker_paused_until", 0.0)
    sweep()
    assert len(mail.outbox) == 1


def refuse_connection(*args, **kwargs):
    raise OperationalError("[Errno 111] Connection refused")


def test_a_mail_handed_out_twice_is_sent_once(send):
    email = send()

    send_emails((task.message(email.pk, email.message_id),), {}, using=SENDER_MAILER)

    assert len(mail.outbox) == 1


def test_a_task_whose_message_id_is_not_the_rows_sends_nothing():
    email = post_office.send("ada@example.com", subject="Ours", message="Body")
    Delivery.objects.filter(email_id=email.pk).update(state="retrying")
    mail.outbox = []

    send_emails((task.message(email.pk, "<another-site@example.com>"),), {}, using=SENDER_MAILER)

    assert mail.outbox == []
    assert state_of(email).state == "retrying"


def test_a_scheduled_mail_waits_for_its_time(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email = post_office.send(
            "ada@example.com",
            subject="Later",
            message="Body",
            scheduled_time=timezone.now() + timedelta(hours=1),
        )
    sweep()
    assert (mail.outbox, state_of(email).state) == ([], "scheduled")

    Email.objects.filter(pk=email.pk).update(scheduled_time=timezone.now())  # its time comes
    time_passes(email)
    sweep()
    assert len(mail.outbox) == 1


def test_an_expired_mail_is_expired_not_sent():
    email = post_office.send(
        "ada@example.com", subject="Too late", message="Body", expires_at=timezone.now()
    )

    sweep()

    assert mail.outbox == []
    assert state_of(email).state == "expired"
    email.refresh_from_db()
    assert email.status == STATUS.failed
    assert "expired" in email.logs.get().message


def test_a_mail_whose_worker_died_is_sent_again():
    email = post_office.send("ada@example.com", subject="Interrupted", message="Body")
    mail.outbox = []
    long_ago = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(email_id=email.pk).update(state="sending", due=long_ago)

    sweep()

    assert len(mail.outbox) == 1
    assert state_of(email).state == "sent"
    assert email.logs.filter(exception_type="Interrupted").exists()


def test_text_is_sent_as_written_not_rendered_as_a_template(send):
    send(subject=TEMPLATE_LIKE_SUBJECT)

    [delivered] = mail.outbox
    assert delivered.subject == TEMPLATE_LIKE_SUBJECT


def test_a_bad_address_is_refused_when_sending_and_nothing_is_recorded():
    with pytest.raises(ValidationError, match="not-an-address"):
        mail.send_mail("Hello", "Body", None, ["not-an-address"])

    assert not Email.objects.exists()
