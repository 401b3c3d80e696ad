import smtplib
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from config import celery_app

# The command sends in autocommit, as from a shell, so the mail is handed to
# the (in-place) worker as soon as it is written.
pytestmark = pytest.mark.django_db(transaction=True)


def send_test_mail(*args):
    """Run the command; return (exit status, what it printed)."""
    out = StringIO()
    try:
        call_command("send_test_mail", *args, stdout=out)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


def test_a_delivered_test_mail_says_sent():
    status, output = send_test_mail("ada@example.com")

    assert (status, output.splitlines()[-1]) == (0, "sent: the mail server accepted it")
    [delivered] = mail.outbox
    assert delivered.to == ["ada@example.com"]
    assert delivered.subject.startswith("Test mail ")


def test_a_refused_test_mail_says_failed_with_the_servers_answer(server):
    server.errors.append(smtplib.SMTPDataError(554, b"Message rejected as spam"))

    status, output = send_test_mail("ada@example.com")

    assert status == 1
    assert output.splitlines()[-1].startswith("failed: ")
    assert "Message rejected as spam" in output


def test_a_passing_failure_says_retrying_with_the_error(server):
    server.errors.append(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    status, output = send_test_mail("ada@example.com")

    assert status == 1
    assert output.splitlines()[-1] == (
        "retrying (1 failed attempt, last error: Connection unexpectedly closed)"
    )


def test_without_a_worker_the_test_mail_is_still_queued(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)

    status, output = send_test_mail("ada@example.com", "--timeout", "0.5")

    assert status == 1
    assert output.splitlines()[-1] == "still queued: is a worker running? is the broker reachable?"
    assert mail.outbox == []
