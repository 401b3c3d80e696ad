"""A model of the mail path, run against the real one.

hypothesis drives random sequences of what happens to a site's mail: sends through every
door, the broker taking, refusing or losing a publish, a worker meeting each answer of the
mail server or dying mid-send, a task delivered twice, sweeps, the admin's Resend, list
action and edits, the clock jumping. The machine keeps its own view of each mail (Mail),
checks after every step what must always hold (MailPath.check), and ends every run with a
healthy broker and server and sweeps until each mail is final (MailPath.recover).

Only the mail server (tests/scripted_server.py) and RabbitMQ (tests/scripted_broker.py) are
stand-ins: the doors, the hand-off, django-celery-email's task run as a Celery worker runs
it, the worker's mailer, the sweeper and the admin's own code are the site's.

The clock: django.utils.timezone.now reads a fake clock here, and so does the hand-off's
time.monotonic, so every reading of the mail path moves together, post_office's `created`
included. (Moving the `due` timestamps instead would leave `created`, which the give-up age
counts from, and the scheduled and expiry times behind.)

The examples come from a seed that changes every day (STATE_MACHINE_SEED to give one), so
each day's runs try other sequences; a failure says its seed. On PostgreSQL when
DATABASE_URL names one.
"""

import logging
import os
import smtplib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.admin import site as admin_site
from django.contrib.auth.models import User
from django.contrib.messages.storage.cookie import CookieStorage
from django.core import mail
from django.db import connection, transaction
from django.test import RequestFactory
from django.utils import timezone
from djcelery_email.tasks import send_emails
from hypothesis import HealthCheck, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from post_office import mail as post_office
from post_office.models import STATUS, Attachment, Email

# Its modules, loaded with the app: delivery.admin, .handoff, .models, .policy, .state, .sweeper.
from {{ cookiecutter.project_slug }} import delivery

from tests import scripted_broker
from tests.scripted_broker import TAKES_IT, ScriptedBroker
from tests.scripted_server import ScriptedServer, WorkerDied

# Real commits: a mail is handed off once the transaction that wrote it commits.
pytestmark = pytest.mark.django_db(transaction=True)

RUNS = hypothesis_settings(
    # Fewer with STATE_MACHINE_EXAMPLES, for a quick look.
    max_examples=int(os.environ.get("STATE_MACHINE_EXAMPLES", 200)),
    stateful_step_count=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Today's date as YYYYMMDD, unless given: reruns on one day repeat its examples.
SEED = int(os.environ.get("STATE_MACHINE_SEED") or datetime.now(UTC).strftime("%Y%m%d"))
START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
MAX_MAILS = 8
TO = ["ada@example.com", "bob@example.com"]
REFUSES_BOB = "refuses bob, accepts ada"
# What the mail server answers, as what the scripted server raises.
SERVER = {
    "accepts": None,
    REFUSES_BOB: None,
    "451 try again later": lambda: smtplib.SMTPDataError(451, b"4.3.0 Try again later"),
    "times out": lambda: TimeoutError("timed out"),
    "535 bad credentials": lambda: smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"),
    "554 rejected": lambda: smtplib.SMTPDataError(554, b"5.7.1 Rejected as spam"),
    "the worker dies before an answer": WorkerDied,
    "the worker dies after the server accepted": lambda: WorkerDied(accepted=True),
}
PASSING = ("451 try again later", "times out")
HEALTHY = ("accepts", REFUSES_BOB)
TROUBLE = [answer for answer in SERVER if answer not in HEALTHY]
DOORS = {
    "send_mail": lambda subject: mail.send_mail(subject, "Body", None, TO),
    "EmailMessage with an attachment": lambda subject: mail.EmailMessage(
        subject, "Body", to=TO, attachments=[("report.pdf", b"%PDF-1.4\n\xff", "application/pdf")]
    ).send(),
    "post_office mail.send": lambda subject: post_office.send(TO, subject=subject, message="B"),
    "post_office send_many": lambda subject: post_office.send_many(
        [{"recipients": TO, "subject": f"{subject}.{n}", "message": "Body"} for n in range(3)]
    ),
    "priority now": lambda subject: post_office.send(
        TO, subject=subject, message="Body", priority="now"
    ),
    "a row written around post_office": lambda subject: Email.objects.create(
        from_email="site@example.com", to=TO, subject=subject, status=STATUS.queued
    ),
}
SCHEDULES = (
    None,
    timedelta(hours=-1),
    timedelta(minutes=10),
    timedelta(hours=2),
    timedelta(days=4),
)
EXPIRIES = (None, timedelta(minutes=5), timedelta(hours=3), timedelta(days=5))
# Past the broker's pause, a retry, a lease, a dead worker, a lost task, the give-up age; or
# (None) to the next moment anything is due.
JUMPS = (None, *(timedelta(seconds=s) for s in (1, 11, 61, 121, 301, 3601, 4 * 86400 + 3600)))
BROKER = st.sampled_from((TAKES_IT, *scripted_broker.ANSWERS))  # mostly, it takes the task
PICK = st.integers(0, MAX_MAILS)
ROLLS_BACK = st.sampled_from((False, False, True))  # now and then, the request fails after
FINAL_VIEWS = ("sent", "failed", "expired")
STATS = Counter()


class Clock:
    """Stands in for django.utils.timezone.now and for the hand-off's time.monotonic."""

    def reset(self):
        self.at = START

    def now(self):
        return self.at

    def monotonic(self):
        return (self.at - START).total_seconds()

    def advance(self, delta):
        self.at += delta


CLOCK = Clock()
BROKER_STANDIN = ScriptedBroker()


def ahead(moment, now):
    return moment is not None and moment > now


def passed(moment, now):
    return moment is not None and moment <= now


@dataclass
class Mail:
    """The model's view of a mail: what the mail path promises should have happened to it."""

    subject: str
    created: datetime
    scheduled: datetime | None = None
    expires: datetime | None = None
    state: str = "waiting"  # waiting (for a worker or its time), sending, sent, failed, expired
    held: bool = False  # "scheduled": waits for its scheduled time
    recorded: bool = True  # False for a row written around post_office, until the sweeper
    sending_until: datetime | None = None  # a dead worker's mail is rescued after this
    accepted: int = 0  # how often the server has accepted it
    may_repeat: int = 0  # acceptances past the first that a crash or a Resend allow
    died_after_acceptance: bool = False  # a worker died after the server accepted it
    refused: dict = field(default_factory=dict)
    why_failed: str = ""

    def view(self, now):
        held = self.state == "waiting" and self.held and ahead(self.scheduled, now)
        return "scheduled" if held else self.state

    def due_since(self):
        """Passing failures are retried for MAIL_GIVE_UP_AFTER from this time on."""
        return max(self.created, self.scheduled or self.created)

    def takeable(self, now):
        return self.view(now) == "waiting" and self.recorded and not passed(self.expires, now)


def real_view(row, now):
    """A row's state in the model's words: pending states are all "waiting" but a mail that
    waits for its scheduled time."""
    if row["delivery__state"] is None:
        return "waiting"  # written around post_office: the sweeper adopts it
    if row["delivery__state"] == delivery.models.State.SCHEDULED:
        return "scheduled" if ahead(row["scheduled_time"], now) else "waiting"
    return "waiting" if row["delivery__state"] in delivery.state.PENDING else row["delivery__state"]


def rows():
    fields = ("pk", "subject", "status", "scheduled_time", "expires_at", "delivery__state")
    values = Email.objects.values(*fields, "delivery__due", "delivery__refused")
    return {row["pk"]: row for row in values}


def admin_request():
    request = RequestFactory().post("/")
    request.user = User(username="admin", is_active=True, is_staff=True, is_superuser=True)
    request._messages = CookieStorage(request)
    return request


def email_admin():
    return delivery.admin.EmailAdmin(Email, admin_site)


class RolledBack(Exception):
    pass


class MailPath(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        Email.objects.all().delete()
        Attachment.objects.all().delete()
        CLOCK.reset()
        BROKER_STANDIN.reset(worker=lambda task: self.work(task, "accepts"))
        delivery.handoff._broker_paused_until = 0.0
        mail.outbox = []
        self.mails = {}  # id: Mail
        self.last_states = {}
        self.resent = set()  # the mails the admin sent again in this step
        STATS["examples"] += 1

    def subject(self):
        STATS["sends"] += 1
        return f"Mail {STATS['sends']}"

    def pick(self, n):
        return sorted(self.mails)[n % len(self.mails)]

    # --- What happens --------------------------------------------------------------------

    @precondition(lambda self: len(self.mails) < MAX_MAILS)
    @rule(door=st.sampled_from(list(DOORS)), broker=BROKER, rolls_back=ROLLS_BACK)
    def a_request_sends(self, door, broker, rolls_back):
        recorded = door != "a row written around post_office"
        self.request(DOORS[door], broker, rolls_back, recorded=recorded)

    @precondition(lambda self: len(self.mails) < MAX_MAILS)
    @rule(scheduled=st.sampled_from(SCHEDULES), expires=st.sampled_from(EXPIRIES), broker=BROKER)
    def a_request_sends_with_a_schedule(self, scheduled, expires, broker):
        now = CLOCK.now()
        times = {
            "scheduled_time": now + scheduled if scheduled is not None else None,
            "expires_at": now + expires if expires is not None else None,
        }
        if ahead(times["scheduled_time"], times["expires_at"] or times["scheduled_time"]):
            times["expires_at"] = None  # post_office refuses a mail that expires before its time

        def send(subject):
            post_office.send(TO, subject=subject, message="Body", **times)

        self.request(
            send,
            broker,
            held=ahead(times["scheduled_time"], now),
            scheduled=times["scheduled_time"],
            expires=times["expires_at"],
        )

    def request(self, send, broker, rolls_back=False, **model):
        """A request that sends (and commits, or fails and rolls back)."""
        with BROKER_STANDIN.answering(broker):
            try:
                with transaction.atomic():
                    send(self.subject())
                    new = Email.objects.exclude(pk__in=self.mails).values_list("pk", "subject")
                    for pk, subject in new:
                        self.mails[pk] = Mail(subject, CLOCK.now(), **model)
                    if rolls_back:
                        raise RolledBack
            except RolledBack:
                for pk, _ in new:
                    del self.mails[pk]

    @precondition(lambda self: BROKER_STANDIN.ready())
    @rule(takes=st.lists(st.tuples(st.integers(0, 9), st.sampled_from(HEALTHY)), min_size=1))
    def workers_take_tasks_and_the_server_takes_the_mail(self, takes):
        self.workers_take(takes)

    @precondition(lambda self: BROKER_STANDIN.ready())
    @rule(takes=st.lists(st.tuples(st.integers(0, 9), st.sampled_from(TROUBLE)), min_size=1))
    def workers_take_tasks_and_meet_trouble(self, takes):
        self.workers_take(takes)

    def workers_take(self, takes):
        """Workers take tasks one after another, each meeting its answer of the server."""
        for pick, answer in takes[:3]:
            if ready := BROKER_STANDIN.ready():
                task = ready[pick % len(ready)]
                BROKER_STANDIN.tasks.remove(task)
                self.work(task, answer)

    def work(self, task, answer):
        now = CLOCK.now()
        for pk in task.mails():
            if not self.expect_attempt(self.mails[pk], answer, now):
                break
        error, count = SERVER[answer], len(task.mails())
        ScriptedServer.errors[:] = [error() for _ in range(count)] if error else []
        ScriptedServer.refusals[:] = [{TO[1]: (550, b"5.1.1 No such user")}] * (
            count if answer == REFUSES_BOB else 0
        )
        try:
            scripted_broker.run(task)
        except WorkerDied:
            STATS["worker deaths"] += 1
            # Acknowledged late, and rejected when its worker is lost: the task is requeued.
            BROKER_STANDIN.tasks.append(task)
        finally:
            ScriptedServer.errors.clear()
            ScriptedServer.refusals.clear()

    @precondition(lambda self: BROKER_STANDIN.tasks)
    @rule(pick=st.integers(0, 9))
    def the_broker_delivers_a_task_twice(self, pick):
        tasks = BROKER_STANDIN.tasks
        tasks.append(replace(tasks[pick % len(tasks)]))

    @rule(broker=BROKER)
    def the_sweeper_runs(self, broker):
        self.expect_sweep(CLOCK.now())
        with BROKER_STANDIN.answering(broker):
            delivery.sweeper.sweep()

    @precondition(lambda self: self.mails)
    @rule(picks=st.sets(PICK, min_size=1, max_size=3), resend=st.booleans(), broker=BROKER)
    def the_admin_sends_mails_again(self, picks, resend, broker):
        """With a mail's Resend button (one mail), or the list's "Send the selected mails
        again"."""
        pks = sorted({self.pick(n) for n in picks})
        if resend:
            pks = pks[:1]
        for pk in pks:
            self.expect_resend(pk)
        with BROKER_STANDIN.answering(broker):
            if resend:
                email_admin().resend(admin_request(), pks[0])
            else:
                selected = Email.objects.filter(pk__in=pks)
                delivery.admin.send_again(email_admin(), admin_request(), selected)

    @precondition(lambda self: self.mails)
    @rule(pick=PICK, moved=st.sampled_from(SCHEDULES), broker=BROKER)
    def the_admin_moves_the_scheduled_time(self, pick, moved, broker):
        now, email = CLOCK.now(), Email.objects.get(pk=self.pick(pick))
        email.scheduled_time = now + moved if moved is not None else None
        if ahead(email.scheduled_time, email.expires_at or email.scheduled_time):
            return  # the form refuses a mail that expires before its time
        model = self.mails[email.pk]
        model.scheduled = email.scheduled_time
        if model.state == "waiting" and model.recorded:
            model.held = ahead(email.scheduled_time, now)
        form = SimpleNamespace(changed_data=["scheduled_time"])
        with BROKER_STANDIN.answering(broker), transaction.atomic():  # as the admin's form
            email_admin().save_model(admin_request(), email, form, change=True)

    @rule(jump=st.sampled_from(JUMPS))
    def time_passes(self, jump):
        CLOCK.advance(jump or self.until_next_due())

    def until_next_due(self):
        """How long until a mail or a task is due (at least past the broker's pause)."""
        now = CLOCK.now()
        moments = [row["delivery__due"] for row in rows().values() if row["delivery__due"]]
        moments += [task.eta for task in BROKER_STANDIN.tasks if task.eta]
        pause = timedelta(seconds=delivery.handoff.BROKER_PAUSE_SECONDS + 1)
        return max(pause, min((moment - now for moment in moments if moment > now), default=pause))

    def recover(self):
        """The broker and the mail server work again, and the sweeper runs as time passes:
        every mail ends final, and sent unless it was refused, given up or expired."""
        for _ in range(20):
            self.the_sweeper_runs(TAKES_IT)
            while ready := BROKER_STANDIN.ready():
                BROKER_STANDIN.tasks.remove(ready[0])
                self.work(ready[0], "accepts")
            now, current = CLOCK.now(), rows()
            waiting = [row for row in current.values() if real_view(row, now) not in FINAL_VIEWS]
            if not waiting:
                break
            CLOCK.advance(self.until_next_due())
        assert not waiting, f"mails still waiting after everything recovered: {waiting}"
        for pk, row in current.items():
            model, final = self.mails[pk], row["delivery__state"]
            assert final != "failed" or model.why_failed, f"mail {pk} failed for no reason"
            assert final != "expired" or passed(model.expires, now), f"mail {pk} expired early"
        return current

    def teardown(self):
        if sys.exc_info()[0] is None:  # a step failed already: let its error stand
            final = self.recover()
            STATS.update(row["delivery__state"] for row in final.values())
            self.check()
            received = Counter(message.subject for message in mail.outbox)
            STATS["delivered twice"] += sum(count > 1 for count in received.values())
            STATS["delivered again after a death"] += sum(
                received[row["subject"]] > 1
                for pk, row in final.items()
                if self.mails[pk].died_after_acceptance
            )

    # --- The model -----------------------------------------------------------------------

    def expect_attempt(self, model, answer, now):
        """What a worker's attempt at a mail of its task does; False when the worker died."""
        if not model.takeable(now):
            return True  # not waiting for a worker: skipped
        model.held = False
        if answer in ("accepts", REFUSES_BOB):
            model.state, model.accepted = "sent", model.accepted + 1
            model.refused = {TO[1]: "550 5.1.1 No such user"} if answer == REFUSES_BOB else {}
        elif answer == "554 rejected":
            model.state, model.why_failed = "failed", answer
        elif answer in PASSING and now - model.due_since() > settings.MAIL_GIVE_UP_AFTER:
            model.state, model.why_failed = "failed", "gave up"
        elif answer in PASSING or answer == "535 bad credentials":
            model.state = "waiting"
        else:
            model.state = "sending"
            model.sending_until = now + settings.MAIL_SENDING_TIMEOUT
            if answer == "the worker dies after the server accepted":
                model.accepted += 1
                model.may_repeat += 1
                model.died_after_acceptance = True
            return False
        return True

    def expect_sweep(self, now):
        """The sweeper adopts rows written around post_office, expires what waited too long,
        and rescues the mails of dead workers (then hands out what is due)."""
        for model in self.mails.values():
            if not model.recorded:
                model.recorded, model.held = True, ahead(model.scheduled, now)
            if model.state == "waiting" and passed(model.expires, now):
                model.state = "expired"
        for model in self.mails.values():
            if model.state == "sending" and model.sending_until <= now:
                model.state, model.held = "waiting", False

    def expect_resend(self, pk):
        """Resend hands out any mail again but one being sent."""
        model = self.mails[pk]
        if model.state == "sending":
            return
        if model.state == "sent":
            model.may_repeat += 1
        model.state, model.held, model.recorded = "waiting", False, True
        self.resent.add(pk)

    # --- What must always hold -----------------------------------------------------------

    @invariant()
    def holds(self):
        STATS["checks"] += 1
        self.check()

    def check(self):
        """Only committed mail is recorded, every mail has a delivery state (or waits for the
        sweeper to adopt it), post_office's status agrees with the state, `sent` only after
        the server accepted it, a final state stays final but for a Resend, the server gets a
        mail a second time only after a worker died between its acceptance and the status
        write or a Resend of a sent mail, no mail is lost, and it all is what the model
        expects."""
        now, current = CLOCK.now(), rows()
        received = Counter(message.subject for message in mail.outbox)
        in_broker = {pk for task in BROKER_STANDIN.tasks for pk in task.mails()}
        assert current.keys() == self.mails.keys(), "only committed mail is recorded"
        for pk, row in current.items():
            model, state = self.mails[pk], row["delivery__state"]
            what = f"mail {pk} ({state}, post_office {STATUS._fields[row['status']]}; {model})"
            assert state or not model.recorded, f"{what}: no delivery state"
            agrees = {"sent": [STATUS.sent], "failed": [STATUS.failed], "expired": [STATUS.failed]}
            assert row["status"] in agrees.get(state, [STATUS.queued, STATUS.requeued]), (
                f"{what}: post_office's status disagrees"
            )
            assert state != "sent" or received[row["subject"]], f"{what}: sent, never accepted"
            before = self.last_states.get(pk)
            assert before not in FINAL_VIEWS or state == before or pk in self.resent, (
                f"{what}: was {before}, final, and nobody sent it again"
            )
            assert received[row["subject"]] <= 1 + model.may_repeat, f"{what}: sent twice"
            self.no_mail_lost(row, now, pk in in_broker, what)
            refused = row["delivery__refused"] if state == "sent" else {}
            expected = model.refused if model.state == "sent" else {}
            assert (real_view(row, now), refused, received[row["subject"]]) == (
                model.view(now),
                expected,
                model.accepted,
            ), f"{what}: not what the model expects"
        self.last_states = {pk: row["delivery__state"] for pk, row in current.items()}
        self.resent.clear()

    @staticmethod
    def no_mail_lost(row, now, in_broker, what):
        """A mail not final is due for the sweeper within a bounded time (a scheduled one, by
        its time); one handed off is in the broker, unless it waited past its expiry."""
        state = row["delivery__state"]
        if state is None or state in FINAL_VIEWS:
            return
        longest = max(
            settings.MAIL_HANDOFF_TIMEOUT,
            settings.MAIL_SENDING_TIMEOUT,
            delivery.policy.SWEEP_LEASE,
            timedelta(seconds=settings.MAIL_RETRY_INTERVAL) + delivery.policy.RETRY_GRACE,
        )
        latest = max(now, row["scheduled_time"] or now) + longest
        assert row["delivery__due"] and row["delivery__due"] <= latest, f"{what}: not due"
        if state == "handed_off" and not passed(row["expires_at"], now):
            assert in_broker, f"{what}: handed off, but no task names it"


def test_the_mail_path_keeps_its_promises_whatever_happens(monkeypatch, settings, tmp_path, capsys):
    settings.MEDIA_ROOT = tmp_path
    settings.MAIL_GIVE_UP_AFTER = timedelta(hours=1)  # reached within a few steps
    # The states are modelled here; the suppression list a refusal feeds has tests of its own.
    settings.MAIL_SUPPRESS_SMTP_CODES = []
    monkeypatch.setattr(timezone, "now", CLOCK.now)
    monkeypatch.setattr(delivery.handoff, "time", CLOCK)
    monkeypatch.setattr(send_emails, "apply_async", BROKER_STANDIN.apply_async)
    # The worker keeps its database connection between tasks (SQLite's would close: slow).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    STATS.clear()
    started = time.monotonic()

    logging.disable(logging.CRITICAL)  # the path logs every failure it meets, on purpose
    try:
        run_state_machine_as_test(seed(SEED)(MailPath), settings=RUNS)
    except BaseException as error:
        error.add_note(f"mail state machine: seed {SEED}; again with STATE_MACHINE_SEED={SEED}")
        raise
    finally:
        logging.disable(logging.NOTSET)

    seconds = time.monotonic() - started
    steps = STATS["checks"] - STATS["examples"]  # holds() runs once before the first step
    mails = STATS["sent"] + STATS["failed"] + STATS["expired"]
    with capsys.disabled():
        print(
            f"\nmail state machine: {STATS['examples']} examples, {steps} steps, "
            f"{mails} mails ({STATS['sent']} sent, {STATS['failed']} failed, "
            f"{STATS['expired']} expired), {STATS['worker deaths']} worker deaths, "
            f"{STATS['delivered twice']} mails delivered twice "
            f"({STATS['delivered again after a death']} after a worker's death), "
            f"seed {SEED}, {seconds:.0f} s on {connection.vendor}"
        )
    # What the run claims to have tried, it tried: most examples ran long, workers died,
    # and a death after the server's answer sent a mail again.
    examples = RUNS.max_examples
    assert STATS["examples"] >= examples // 2, f"seed {SEED}: {STATS['examples']} examples ran"
    assert steps >= examples * RUNS.stateful_step_count // 4, f"seed {SEED}: {steps} steps"
    if examples >= 100:  # the full run; fewer for a quick look may meet no death
        assert STATS["worker deaths"] >= examples // 20, f"seed {SEED}: {STATS}"
        assert STATS["delivered again after a death"] >= 1, f"seed {SEED}: {STATS}"
