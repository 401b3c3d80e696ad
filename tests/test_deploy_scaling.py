"""Scaling past one machine, as the baked site's README describes it: two workers with
their own node names share the mail queue, two sweepers run at once, and a backlog of
200 mails goes out once each."""

import re
import socket
import sys
from collections import Counter

import pytest
from conftest import bake, wait_for
from deployment import UNREACHABLE_BROKER

pytest_plugins = ["deployed_site"]

BACKLOG = 200
WORKERS = ("one", "two")


@pytest.fixture
def site(tmp_path, postgres, rabbitmq, smtp_server):
    """A default bake on PostgreSQL, whose row locks the sweepers rely on, and RabbitMQ."""
    baked = bake(tmp_path)
    baked.env = {"DATABASE_URL": postgres, "CELERY_BROKER_URL": rabbitmq, "EMAIL_URL": smtp_server.url}
    baked.manage("migrate", "--verbosity", "0")
    yield baked
    baked.stop_all()


def test_two_workers_and_two_sweepers_deliver_a_backlog_once(site, smtp_server):
    # The backlog: mail queued while the broker was unreachable, waiting for the sweepers.
    site.script("send.py", "--plain", str(BACKLOG), env={"CELERY_BROKER_URL": UNREACHABLE_BROKER})
    assert site.statuses() == {"queued": BACKLOG}

    for name in WORKERS:
        site.start(
            "deploy/bin/worker", env={"WORKER_NAME": name, "WORKER_CONCURRENCY": "4"}, log=f"{name}.log"
        )
    for name in WORKERS:
        ready = f"{name}@{socket.gethostname()} ready."
        wait_for(lambda name=name, ready=ready: ready in (site.path / f"{name}.log").read_text(), 60, ready)
    sweepers = [
        site.start(sys.executable, "manage.py", "send_queued_mail", log=f"sweeper-{n}.log") for n in (1, 2)
    ]
    wait_for(lambda: all(sweeper.poll() is not None for sweeper in sweepers), 60, "both sweepers done")

    handed = [
        int(re.search(r"Handed (\d+) mails", (site.path / f"sweeper-{n}.log").read_text())[1]) for n in (1, 2)
    ]
    assert sum(handed) == BACKLOG, f"the sweepers handed out {handed} mails"
    wait_for(lambda: len(smtp_server.messages) >= BACKLOG, 120, f"{BACKLOG} mails at the SMTP server")
    assert wait_for(lambda: site.statuses() == {"sent": BACKLOG}, 30, f"{BACKLOG} mails recorded as sent")
    arrived = Counter(message["Subject"] for message in smtp_server.messages)
    lost = {f"plain {n}" for n in range(BACKLOG)} - set(arrived)
    duplicates = {subject: count for subject, count in arrived.items() if count > 1}
    assert (lost, duplicates) == (set(), {})
    # Both workers took tasks from the one queue.
    succeeded = {name: (site.path / f"{name}.log").read_text().count(" succeeded in ") for name in WORKERS}
    assert all(succeeded.values()), succeeded
