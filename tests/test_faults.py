"""Delivery under faults, on the machine's RabbitMQ and PostgreSQL with a real SMTP server.

Outages are made by TCP proxies the test controls, never by stopping the
shared services. Every scenario prints `lost=N duplicates=N` and its time.
"""

import itertools
import os
import signal
import statistics
import time
from datetime import datetime
from urllib.parse import urlsplit

import psycopg
import pytest
import samples
from harness.baked_site import bake
from harness.figures import report
from harness.processes import wait_for
from harness.smtp_catcher import SmtpCatcher
from harness.tcp_proxy import TcpProxy

# Fast retries, so that outages longer than the worker's retry window fit in a test.
FAST_RETRIES = {"MAIL_MAX_RETRIES": "2", "MAIL_RETRY_INTERVAL": "1", "MAIL_SENDING_TIMEOUT": "5"}
WORKER_CONCURRENCY = 20  # deploy/bin/worker's default


class MailPath:
    """A baked site on PostgreSQL and RabbitMQ, with proxies in front of the broker and the SMTP server."""

    def __init__(self, site, smtp, smtp_proxy, broker_proxy, broker):
        self.site, self.smtp, self.smtp_proxy, self.broker_proxy = site, smtp, smtp_proxy, broker_proxy
        self.broker = broker
        self.started = time.monotonic()

    def send(self, *args):
        return self.site.script("send.py", *args)

    def rows(self):
        return self.site.script("report.py")

    def statuses(self):
        return self.site.statuses()

    def wait_until_all(self, status, count, timeout=120):
        return wait_for(lambda: self.statuses() == {status: count}, timeout, f"{count} mails {status}")

    def report(self, line):
        """A measured line, named after the broker it was measured on."""
        report(f"{self.broker} {line}")

    def tally(self, scenario, expected=None):
        """Lost and duplicated mails: the site's rows (or `expected` Message-IDs) against what arrived."""
        rows = self.rows()
        expected = expected if expected is not None else {row["message_id"] for row in rows}
        post_office_says = {"sent": "sent", "failed": "failed", "expired": "failed"}
        disagree = [
            row
            for row in rows
            if post_office_says.get(row["status"], row["post_office status"]) != row["post_office status"]
        ]
        assert not disagree, f"post_office's status disagrees with the state: {disagree[:3]}"
        lost, duplicates = self.smtp.lost_and_duplicates(expected)
        seconds = time.monotonic() - self.started
        self.report(
            f"[{scenario}] mails={len(expected)} lost={lost} duplicates={duplicates} time={seconds:.1f}s"
        )
        return lost, duplicates


@pytest.fixture
def mail_path(tmp_path, any_rabbitmq, postgres, request):
    """On the machine's RabbitMQ 3.10 with the site's default classic queue, and on RabbitMQ 4
    in a container with a quorum queue (what compose runs)."""
    smtp_delay = getattr(request, "param", 0.0)
    site = bake(tmp_path)
    on_rabbitmq4 = "rabbitmq-4" in request.node.callspec.id
    broker_port = urlsplit(any_rabbitmq).port
    with (
        SmtpCatcher(delay=smtp_delay) as smtp,
        TcpProxy(smtp.controller.port) as smtp_proxy,
        TcpProxy(broker_port) as broker_proxy,
    ):
        site.env = {
            "DATABASE_URL": postgres,
            "CELERY_BROKER_URL": any_rabbitmq.replace(f":{broker_port}/", f":{broker_proxy.port}/"),
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_proxy.port}",
            "RABBITMQ_QUEUE_TYPE": "quorum" if on_rabbitmq4 else "classic",
            **FAST_RETRIES,
        }
        site.manage("migrate", "--verbosity", "0")
        broker = "RabbitMQ 4, quorum queue" if on_rabbitmq4 else "RabbitMQ 3.10, classic queue"
        yield MailPath(site, smtp, smtp_proxy, broker_proxy, broker)
        site.stop_all()


def start_sweeper(path):
    return path.site.start("deploy/bin/sweep", env={"SWEEP_INTERVAL": "1"}, log="sweeper.log")


def test_status_is_truthful_and_an_smtp_outage_shorter_than_the_retry_window_loses_nothing(mail_path):
    mail_path.site.start_worker()
    start_sweeper(mail_path)
    mail_path.smtp_proxy.cut()

    mail_path.send("--plain", "50", "--rich", "50", "--rejected", "10")

    rows = wait_for(
        lambda: (rows := mail_path.rows()) and all(row["failed attempts"] >= 1 for row in rows) and rows,
        60,
        "a failed attempt on every mail",
    )
    assert "sent" not in {row["status"] for row in rows}, "a mail says sent while the server is down"
    mail_path.smtp_proxy.restore()

    wait_for(lambda: mail_path.statuses() == {"sent": 100, "failed": 10}, 120, "100 sent and 10 refused")
    refused = [row for row in mail_path.rows() if row["status"] == "failed"]
    assert all("No such user here" in row["last error"] for row in refused)
    sent = {row["message_id"] for row in mail_path.rows() if row["status"] == "sent"}
    assert mail_path.tally("smtp outage < retry window", sent) == (0, 0)


def test_an_smtp_outage_longer_than_the_retry_window_loses_nothing(mail_path):
    mail_path.site.start_worker()
    start_sweeper(mail_path)
    mail_path.smtp_proxy.cut()

    mail_path.send("--plain", "60")

    # The worker tries each mail 1 + MAIL_MAX_RETRIES times; more attempts
    # than that mean the sweeper gave it another round.
    rounds = int(FAST_RETRIES["MAIL_MAX_RETRIES"]) + 1
    wait_for(
        lambda: all(row["failed attempts"] > rounds for row in mail_path.rows()),
        120,
        "every mail to be past the worker's retries",
    )
    assert "sent" not in mail_path.statuses()
    mail_path.smtp_proxy.restore()

    mail_path.wait_until_all("sent", 60)
    assert mail_path.tally("smtp outage > retry window") == (0, 0)


def test_a_mail_sent_while_the_broker_is_down_is_delivered_once_it_is_back(mail_path):
    mail_path.site.start_worker()
    start_sweeper(mail_path)
    mail_path.broker_proxy.cut()

    costs = mail_path.send("--plain", "100")

    mail_path.report(
        f"[broker refused] send_mail ms: max={max(costs):.1f} p50={statistics.median(costs):.2f}"
    )
    assert mail_path.statuses() == {"queued": 100}
    mail_path.broker_proxy.restore()
    mail_path.wait_until_all("sent", 100)
    assert mail_path.tally("broker outage at send time") == (0, 0)


def test_a_broker_that_does_not_answer_is_waited_for_2_s_then_left_alone_for_10_s(mail_path):
    """The hand-off thread, not the request, waits for the broker: at most 2 s a connection
    (CELERY_BROKER_CONNECTION_TIMEOUT), then none for 10 s (handoff.BROKER_PAUSE_SECONDS),
    seen at the broker's port while one process sends a mail every half second for 16 s."""
    mail_path.broker_proxy.hang()

    costs = mail_path.send("--plain", "32", "--every", "0.5")

    hung = mail_path.broker_proxy.hung
    assert hung, "nothing tried the broker"
    wait_for(lambda: all(closed for _, closed in hung), 5, "the sender's connections to close")
    mail_path.report(
        f"[broker hanging] send_mail ms: max={max(costs):.1f} p50={statistics.median(costs):.2f};"
        f" connections (s after the first, waited s): "
        + ", ".join(f"{opened - hung[0][0]:.1f} ({closed - opened:.1f})" for opened, closed in hung if closed)
    )
    assert max(costs) < 1000, "a request waited for an unresponsive broker"
    assert mail_path.statuses() == {"queued": 32}
    waits = [closed - opened for opened, closed in hung if closed]
    assert waits and max(waits) < 2.5, f"the hand-off waited longer than 2 s for the broker: {waits}"
    # Connections come in rounds (a publish may retry once); between rounds 10 s of silence.
    rounds = [[hung[0]]]
    for attempt in hung[1:]:
        if attempt[0] - rounds[-1][-1][1] < 1:
            rounds[-1].append(attempt)
        else:
            rounds.append([attempt])
    pauses = [later[0][0] - earlier[-1][1] for earlier, later in itertools.pairwise(rounds)]
    assert len(rounds) >= 2, f"the broker was tried once in 16 s of sending: {hung}"
    assert all(9.5 < pause < 12 for pause in pauses), f"pauses between tries, not 10 s: {pauses}"


@pytest.mark.parametrize("mail_path", [0.2], indirect=True)  # the server answers in 200 ms
def test_a_worker_killed_mid_delivery_loses_nothing(mail_path):
    worker = mail_path.site.start_worker()
    start_sweeper(mail_path)
    mail_path.send("--plain", "200")
    wait_for(lambda: len(mail_path.smtp.messages) >= 40, 60, "40 mails delivered")

    os.killpg(worker.pid, signal.SIGKILL)
    in_flight = mail_path.statuses().get("sending", 0)
    mail_path.site.start_worker(name="replacement")

    mail_path.wait_until_all("sent", 200, timeout=180)
    lost, duplicates = mail_path.tally(f"worker killed, {in_flight} mails in flight")
    assert lost == 0
    assert duplicates <= in_flight <= WORKER_CONCURRENCY


def test_two_sweepers_and_two_workers_on_two_hosts_send_each_mail_once(mail_path):
    """The site's sweeper takes no file lock: rows are claimed in the shared database.
    Released at the same moment, each sweeper hands out part of the backlog and no mail is
    handed out twice. The workers have their own node names and share the one queue."""
    mail_path.broker_proxy.cut()
    mail_path.send("--plain", "1000")  # left in the database for the sweepers
    mail_path.broker_proxy.restore()
    mail_path.site.start_worker(name="a")
    mail_path.site.start_worker(name="b")

    hosts = ("one", "two")
    # Both sweepers wait at a lock on the mail states until both are there, then claim at once.
    with psycopg.connect(mail_path.site.env["DATABASE_URL"]) as gate:
        gate.execute("LOCK TABLE delivery_delivery IN EXCLUSIVE MODE")
        sweepers = [
            mail_path.site.start("python", "manage.py", "send_queued_mail", log=f"{host}.log")
            for host in hosts
        ]
        wait_for(lambda: waiting_for_a_lock(gate) == 2, 60, "both sweepers to wait at the lock")
    for sweeper in sweepers:
        sweeper.wait()

    logs = [(mail_path.site.path / f"{host}.log").read_text() for host in hosts]
    handed = [int(log.split("Handed ")[1].split()[0]) for log in logs]
    mail_path.report(f"[two sweepers] handed out {handed}")
    assert sum(handed) == 1000
    assert all(handed), f"one sweeper handed out everything, the other nothing: {handed}"
    mail_path.wait_until_all("sent", 1000)
    assert mail_path.tally("two sweepers, two workers") == (0, 0)
    succeeded = {
        name: (mail_path.site.path / f"worker-{name}.log").read_text().count(" succeeded in ")
        for name in "ab"
    }
    assert all(succeeded.values()), f"one worker took no task: {succeeded}"


def waiting_for_a_lock(connection):
    """How many other sessions on this database wait for a lock."""
    with psycopg.connect(connection.info.dsn, autocommit=True) as observer:
        return observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid <> %s",
            [connection.info.backend_pid],
        ).fetchone()[0]


def test_only_mail_from_committed_transactions_is_delivered(mail_path):
    mail_path.site.start_worker()

    mail_path.send("--plain", "30", "--rolled-back", "30")

    mail_path.wait_until_all("sent", 30)
    subjects = [message["Subject"] for message in mail_path.smtp.messages]
    assert not [subject for subject in subjects if subject.startswith("rolled back")]
    assert mail_path.tally("transactions") == (0, 0)


def test_attachments_inline_images_and_non_ascii_text_arrive_intact(mail_path):
    mail_path.site.start_worker()

    mail_path.send("--content", "30")

    mail_path.wait_until_all("sent", 30)
    assert mail_path.tally("content") == (0, 0)
    for message in mail_path.smtp.messages:
        n = int(message["Subject"].rsplit(" ", 1)[1])
        assert message["Subject"] == samples.CONTENT_SUBJECT.format(n=n)
        assert str(message["From"]) == samples.CONTENT_FROM
        assert message["To"].addresses[0].display_name == "Jörg Müller"
        assert message["To"].addresses[0].domain == "xn--exmple-cua.com"
        assert message.get_body(("html",)).get_content().rstrip("\r\n") == samples.CONTENT_HTML
        parts = {part.get_filename(): part for part in message.walk() if part.get_filename()}
        for name, content, mimetype in samples.CONTENT_ATTACHMENTS:
            assert parts[name].get_content_type() == mimetype
            # Bytes against bytes: the text attachment's CRLF line endings included.
            sent = content if isinstance(content, bytes) else content.encode()
            assert parts[name].get_payload(decode=True) == sent, name
        logo = parts["logo.png"]
        assert (logo["Content-ID"], logo.get_content_type()) == (samples.LOGO_CID, "image/png")
        assert logo.get_content() == samples.LOGO_PNG


def test_a_scheduled_mail_is_not_delivered_before_its_time(mail_path):
    mail_path.site.start_worker()
    start_sweeper(mail_path)

    mail_path.send("--plain", "30", "--scheduled-in", "4")

    mail_path.wait_until_all("sent", 30, timeout=60)
    scheduled = min(datetime.fromisoformat(row["scheduled"]).timestamp() for row in mail_path.rows())
    assert min(mail_path.smtp.arrived_at) >= scheduled
    assert mail_path.tally("scheduled") == (0, 0)


def test_an_expired_mail_is_failed_and_never_delivered(mail_path):
    mail_path.send("--plain", "20", "--expires-in", "1")  # no worker yet: the tasks wait in RabbitMQ
    wait_for(lambda: all(row["expired"] for row in mail_path.rows()), 10, "the mails to expire")
    mail_path.site.start_worker()
    start_sweeper(mail_path)

    mail_path.wait_until_all("expired", 20, timeout=60)
    assert mail_path.smtp.messages == []
    assert all("expired" in row["last error"] for row in mail_path.rows())
    mail_path.report("[expired] mails=20 delivered=0")


def test_under_a_backlog_high_priority_goes_before_medium(mail_path):
    # Both in the transactional lane: low is bulk mail, which has a queue of its own.
    mail_path.send("--plain", "100", "--priority", "medium", "--tag", " medium")
    mail_path.send("--plain", "20", "--priority", "high", "--tag", " high")

    mail_path.site.start_worker(env={"WORKER_CONCURRENCY": "1"})

    mail_path.wait_until_all("sent", 120)
    order = [message["Subject"].endswith("high") for message in mail_path.smtp.messages]
    highs = [index for index, high in enumerate(order) if high]
    last_high, mean_high = max(highs), sum(highs) / len(highs)
    mail_path.report(
        f"[priority] the last high-priority mail arrived {last_high + 1}th of 120,"
        f" on average {mean_high + 1:.0f}th"
    )
    if "quorum" in mail_path.broker:
        # Two levels, and RabbitMQ delivers some normal messages in among the high ones
        # (https://www.rabbitmq.com/docs/quorum-queues#priorities); how many varies from
        # run to run (the last high one 51st seen): the high ones go early, none among the
        # last twenty, where a queue without priorities would put them all.
        assert last_high < 100
        assert mean_high < 40
    else:
        # The worker may already hold one medium mail when it starts; every high one goes next.
        assert last_high < 21 + 1
    assert mail_path.tally("priority") == (0, 0)
