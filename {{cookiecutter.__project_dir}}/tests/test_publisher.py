import pytest
from django.core import mail
from djcelery_email.tasks import send_emails
from post_office import mail as post_office

from {{ cookiecutter.project_slug }}.delivery import handoff
from {{ cookiecutter.project_slug }}.delivery.models import Delivery


@pytest.mark.background_handoff
@pytest.mark.django_db(transaction=True)
def test_committed_mail_is_handed_off_by_the_background_thread():
    for n in range(5):
        mail.send_mail(f"Hello {n}", "Body", None, [f"ada{n}@example.com"])
    handoff.flush()

    assert sorted(message.subject for message in mail.outbox) == [f"Hello {n}" for n in range(5)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}


@pytest.mark.background_handoff
@pytest.mark.django_db(transaction=True)
def test_mails_committed_while_the_handoff_lingers_go_out_in_one_task(monkeypatch):
    monkeypatch.setattr(handoff, "LINGER_SECONDS", 2.0)  # ample for five commits
    tasks = []
    publish = send_emails.apply_async

    def counted(args, *more, **options):
        tasks.append(len(args[0]))
        return publish(args, *more, **options)

    monkeypatch.setattr(send_emails, "apply_async", counted)
    for n in range(5):  # five requests, five commits
        mail.send_mail(f"Hello {n}", "Body", None, [f"ada{n}@example.com"])
    handoff.flush()

    assert tasks == [5]
    assert len(mail.outbox) == 5


@pytest.mark.parametrize(
    "queue_type, published", [("classic", [3, 2, 1, 0]), ("quorum", [5, 5, 0, 0])]
)
@pytest.mark.django_db
def test_post_offices_priorities_map_onto_the_queues_levels(
    settings, monkeypatch, committed, queue_type, published
):
    settings.RABBITMQ_QUEUE_TYPE = queue_type
    priorities = []
    monkeypatch.setattr(
        send_emails, "apply_async", lambda *args, priority, **kwargs: priorities.append(priority)
    )

    with committed():
        for priority in ("low", "medium", "high", "now"):
            post_office.send("ada@example.com", subject=priority, message="Hi", priority=priority)

    assert sorted(priorities, reverse=True) == published
