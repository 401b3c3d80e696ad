"""The hand-off thread: it leaves an unreachable broker alone for a while, comes back when it
dies, and publishes what its process committed before the process exits."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core import mail
from djcelery_email.tasks import send_emails
from kombu.exceptions import OperationalError

from {{ cookiecutter.project_slug }}.delivery import handoff, models


class Clock:
    """time.monotonic for the hand-off, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def broker(monkeypatch):
    """The broker's publish, counted; set `broker.down` to refuse every publish."""

    class Broker:
        down = False
        tries = 0

    publish = send_emails.apply_async

    def counted(*args, **kwargs):
        Broker.tries += 1
        if Broker.down:
            raise OperationalError("[Errno 111] Connection refused")
        return publish(*args, **kwargs)

    monkeypatch.setattr(send_emails, "apply_async", counted)
    return Broker


def states():
    return list(models.Delivery.objects.order_by("email_id").values_list("state", flat=True))


@pytest.mark.django_db
def test_an_unreachable_broker_is_left_alone_for_10_seconds(broker, monkeypatch, committed):
    clock = Clock()
    monkeypatch.setattr(handoff.time, "monotonic", clock)
    broker.down = True
    with committed():
        mail.send_mail("First", "Body", None, ["ada@example.com"])
    assert broker.tries == 1

    broker.down = False
    clock.now += 9.9  # docs/mail-path.md promises 10 s
    with committed():
        mail.send_mail("Within the pause", "Body", None, ["bob@example.com"])
    assert broker.tries == 1, "the broker was asked again within the pause"
    assert states() == ["queued", "queued"]  # both due for the sweeper

    clock.now += 0.2
    with committed():
        mail.send_mail("After the pause", "Body", None, ["cy@example.com"])
    assert broker.tries == 2
    assert states() == ["queued", "queued", "sent"]
    assert [message.subject for message in mail.outbox] == ["After the pause"]


class ThreadKilled(BaseException):
    """Ends the hand-off thread the way nothing it catches can."""


@pytest.mark.background_handoff
@pytest.mark.django_db(transaction=True)
def test_a_dead_handoff_thread_is_started_again_by_the_next_commit(monkeypatch):
    hand_off = handoff.hand_off_due

    def dies(mails):
        raise ThreadKilled

    monkeypatch.setattr(handoff, "hand_off_due", dies)
    monkeypatch.setattr("threading.excepthook", lambda args: None)  # its death is expected
    mail.send_mail("Lost with the thread", "Body", None, ["ada@example.com"])
    handoff.flush()
    handoff._thread.join(5)
    dead = handoff._thread
    assert not dead.is_alive()

    monkeypatch.setattr(handoff, "hand_off_due", hand_off)
    mail.send_mail("After", "Body", None, ["bob@example.com"])
    handoff.flush()

    assert handoff._thread is not dead and handoff._thread.is_alive()
    assert [message.subject for message in mail.outbox] == ["After"]
    assert states() == ["queued", "sent"]  # the first waits for the sweeper


def test_a_process_publishes_what_it_committed_before_it_exits(tmp_path):
    """A short-lived process (a management command, a script) exits right after its last
    commit: atexit waits for the hand-off, so its mails are in the broker, not left behind."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "FILESYSTEM_BROKER_DIR": str(tmp_path / "broker"),
    }
    run = dict(cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True, check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], **run)

    send_and_exit = [
        "import django; django.setup(); from django.core.mail import send_mail",
        "for n in range(3): send_mail(f'Hello {n}', 'Body', None, [f'ada{n}@example.com'])",
    ]
    subprocess.run([sys.executable, "-c", "\n".join(send_and_exit)], **run)  # noqa: S603

    read_states = [
        "from {{ cookiecutter.project_slug }}.delivery import models",
        "print(*models.Delivery.objects.values_list('state', flat=True))",
    ]
    shell = [sys.executable, "manage.py", "shell", "--no-imports", "-c", "\n".join(read_states)]
    handed = subprocess.run(shell, **run).stdout.split()  # noqa: S603
    assert handed == ["handed_off"] * 3
    assert list((tmp_path / "broker" / "queue").iterdir()), "nothing reached the broker"
