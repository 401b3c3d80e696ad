"""Every door into post_office's rows goes through the workers and the same states."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.mail.message import BadHeaderError
from django.core.management import call_command
from django.utils import timezone
from post_office import mail as post_office
from post_office.models import STATUS, Email, EmailTemplate

from {{ cookiecutter.project_slug }}.delivery.models import Delivery

from tests.samples import BROKEN_TEMPLATE_TEXT, GREETING_SUBJECT, GREETING_TEXT
from tests.scripted_server import OtherServer

pytestmark = pytest.mark.django_db


def states():
    return sorted(Delivery.objects.values_list("state", flat=True))


def test_priority_now_goes_through_the_worker_not_the_request(committed):
    with committed():
        email = post_office.send("ada@example.com", subject="Now", message="Body", priority="now")
        assert mail.outbox == [], "sent inside the request"
        assert Email.objects.get(pk=email.pk).status == STATUS.queued

    assert len(mail.outbox) == 1
    assert states() == ["sent"]
    assert [log.status for log in Email.objects.get(pk=email.pk).logs.all()] == [STATUS.sent]


def test_post_offices_default_priority_now_is_the_highest_priority_of_the_queue(
    settings, committed
):
    settings.POST_OFFICE = {**settings.POST_OFFICE, "DEFAULT_PRIORITY": "now"}

    with committed():
        mail.send_mail("Hello", "Body", None, ["ada@example.com"])

    assert Email.objects.get().priority == 3
    assert (len(mail.outbox), states()) == (1, ["sent"])


def test_send_many_records_and_delivers_every_mail(committed):
    with committed():
        post_office.send_many(
            [
                {"recipients": [f"u{n}@example.com"], "subject": f"Many {n}", "message": "Hi"}
                for n in range(3)
            ]
        )

    assert sorted(message.subject for message in mail.outbox) == ["Many 0", "Many 1", "Many 2"]
    assert states() == ["sent"] * 3


def test_a_backend_alias_delivers_through_that_mailer(committed):
    with committed():
        post_office.send("ada@example.com", subject="Elsewhere", message="Body", backend="other")

    assert [message.subject for message in OtherServer.received] == ["Elsewhere"]
    assert mail.outbox == []
    assert states() == ["sent"]


def test_a_mail_naming_a_mailer_the_site_lacks_waits_as_a_fault_of_the_setup():
    Email.objects.create(
        from_email="site@example.com",
        to=["ada@example.com"],
        status=STATUS.queued,
        backend_alias="gone",
    )

    call_command("send_queued_mail", stdout=StringIO())

    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.fault) == ("retrying", "setup")
    assert "'gone'" in delivery.reason


def test_a_naive_time_is_read_as_django_stores_it(committed):
    ahead, past = (timezone.make_naive(timezone.now() + timedelta(hours=n)) for n in (1, -1))

    with committed(), pytest.warns(RuntimeWarning, match="naive datetime"):
        later = post_office.send(
            "ada@example.com", subject="Later", message="Body", scheduled_time=ahead
        )
        post_office.send("bob@example.com", subject="Due", message="Body", scheduled_time=past)

    assert [message.subject for message in mail.outbox] == ["Due"]
    assert Delivery.objects.get(email=later).state == "scheduled"


def test_post_offices_send_queued_leaves_the_sending_to_the_workers():
    Email.objects.create(
        from_email="site@example.com", to=["ada@example.com"], status=STATUS.queued
    )

    assert post_office.send_queued() == (0, 0, 0), "counted as sent in the calling process"
    assert (len(mail.outbox), states()) == (1, ["sent"])


def test_a_template_rendered_on_delivery_is_rendered_by_the_worker(committed):
    EmailTemplate.objects.create(name="hello", subject=GREETING_SUBJECT, content=GREETING_TEXT)

    with committed():
        post_office.send(
            "ada@example.com", template="hello", context={"name": "Ada"}, render_on_delivery=True
        )

    [delivered] = mail.outbox
    assert (delivered.subject, delivered.body) == ("Hello Ada", "Hi Ada")


def test_a_mail_that_cannot_be_built_fails_with_the_reason_and_holds_nothing_back(committed):
    broken = EmailTemplate.objects.create(name="broken", subject="Hi", content=BROKEN_TEMPLATE_TEXT)

    with committed():
        post_office.send("ada@example.com", template=broken, context={}, render_on_delivery=True)
        mail.send_mail("Fine", "Body", None, ["bob@example.com"])

    assert [message.subject for message in mail.outbox] == ["Fine"]
    failed = Delivery.objects.get(state="failed")
    assert failed.fault == "refused"
    assert "Unexpected end of expression in if tag" in failed.reason


def test_the_sweeper_takes_post_offices_options_and_says_why_they_change_nothing():
    out, err = StringIO(), StringIO()

    call_command(
        "send_queued_mail",
        "--processes",
        "2",
        "--lockfile",
        "send_queued_mail.lock",
        stdout=out,
        stderr=err,
    )

    assert "--processes changes nothing: the Celery workers send the mail" in err.getvalue()
    assert "--lockfile changes nothing: sweepers need no lock here" in err.getvalue()
    assert out.getvalue().startswith("Handed 0 mails to the workers")


def test_a_row_written_around_post_offices_api_is_found_and_sent_by_the_sweeper():
    Email.objects.create(
        from_email="site@example.com", to=["ada@example.com"], status=STATUS.queued
    )

    call_command("send_queued_mail", stdout=StringIO())

    assert (len(mail.outbox), states()) == (1, ["sent"])


def test_cleanup_deletes_old_finished_mail_and_keeps_mail_still_waiting(committed):
    with committed():
        post_office.send("old@example.com", subject="Done", message="Body")
        waiting = post_office.send(
            "later@example.com",
            subject="Far ahead",
            message="Body",
            scheduled_time=timezone.now() + timedelta(days=400),
        )
    Email.objects.update(created=timezone.now() - timedelta(days=200))

    call_command("cleanup_mail", stdout=StringIO())

    assert list(Email.objects.values_list("pk", flat=True)) == [waiting.pk]


def test_cleanup_can_keep_attachments():
    out = StringIO()

    call_command("cleanup_mail", "--keep-attachments", stdout=out)

    assert "and 0 attachments" in out.getvalue()


@pytest.mark.parametrize(
    "header",
    [
        {"subject": "Hello\r\nBcc: victim@example.com"},
        {"subject": "Hello\nthere"},
        {"headers": {"X-Campaign": "spring\r\nBcc: victim@example.com"}},
        {"reply_to": ["ada@example.com\nBcc: victim@example.com"]},
    ],
)
def test_a_line_break_in_a_header_raises_bad_header_error_at_the_door_and_writes_nothing(header):
    fields = {"subject": "Hello", "body": "Body", "to": ["ada@example.com"], **header}

    with pytest.raises(BadHeaderError, match="line breaks"):
        mail.EmailMessage(**fields).send()
    with pytest.raises(BadHeaderError):
        mail.send_mail("Hi\r\nBcc: victim@example.com", "Body", None, ["ada@example.com"])

    assert (Email.objects.count(), Delivery.objects.count()) == (0, 0)
