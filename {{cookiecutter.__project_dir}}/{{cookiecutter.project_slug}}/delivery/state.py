"""Every change of a mail's state, and the only code that writes one.

    queued ──▶ handed off ──▶ sending ──▶ sent
      ▲            ▲             │
    (any door)  scheduled        ├──▶ retrying ──▶ (handed off again, or taken by Celery's retry)
                                 ├──▶ held ──▶ (handed off again when the limits allow)
                                 └──▶ failed
    a mail still waiting past its expires_at ──▶ expired

record() writes a new mail's first state (queued, or scheduled). Every later change is a row
of MOVES, made by move(): one conditional UPDATE of the delivery rows (the states the row
allows, and the version a process read), so two processes never move the same mail the same
way twice; with it post_office's own status and a Log row, so post_office's admin, API and
commands see the same thing. `Delivery.due` says when the sweeper acts on a mail (see
models.Delivery); a move that keeps the state moves `due` only.
"""

from contextlib import nullcontext
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from post_office.models import STATUS, Email, Log
from post_office.settings import get_log_level, get_retry_timedelta

from ..recipients import events
from . import policy
from .lanes import lane_of
from .models import Delivery, Fault, LogOutcome, Outcome, State, as_stored

PENDING = (State.QUEUED, State.SCHEDULED, State.HANDED_OFF, State.RETRYING, State.HELD)
TAKEABLE = (State.QUEUED, State.HANDED_OFF, State.RETRYING, State.HELD)
FINAL = (State.SENT, State.FAILED, State.EXPIRED)
ANY = None  # no guard: the move is written whatever the state


class Rule(NamedTuple):
    sources: tuple | None  # the states a mail may be in (the UPDATE's guard); ANY: whatever
    targets: tuple  # the states it may go to; (): its state stays, only `due` moves
    status: bool  # post_office's status is written with it
    counted: bool = False  # a failed attempt: counted on the delivery and post_office's row


# The moves, by what triggers them.
MOVES = {
    "handed off": Rule(PENDING, (State.HANDED_OFF,), False),  # the broker took its task
    "left behind": Rule(PENDING, (), False),  # the broker did not: due for the sweeper now
    "leased": Rule(PENDING, (), False),  # a sweeper claimed it to hand it out
    "taken": Rule((State.SCHEDULED, *TAKEABLE), (State.SENDING,), False),  # by a worker
    "sent": Rule(ANY, (State.SENT,), True),  # the server accepted it: what happened
    "withheld": Rule((State.SENDING,), (State.FAILED,), True),  # every recipient suppressed
    "failed attempt": Rule((State.SENDING,), (State.RETRYING, State.FAILED), True, counted=True),
    "held": Rule((State.SENDING,), (State.HELD,), False),  # the provider's limits
    "interrupted": Rule((State.SENDING,), (State.RETRYING,), True),  # its worker died
    "expired": Rule(PENDING, (State.EXPIRED,), True),  # its expires_at passed
    "sent again": Rule((*PENDING, *FINAL), (State.QUEUED, State.RETRYING), True),  # by staff
    "rescheduled": Rule(PENDING, (State.SCHEDULED, State.QUEUED), False),  # an admin's edit
}


class Note(NamedTuple):
    """A Log row's words."""

    message: str
    exception_type: str = ""


def move(trigger, ids, to=None, *, version=None, attempts=0, log=None, **fields):
    """Make the move `trigger` of MOVES for the mails `ids` in one of its states (and at
    `version`, if given): their delivery rows get `to` and `fields`; post_office's status
    follows (its mail counted `attempts` failed attempts, written if the move counts one);
    `log`, a Note, writes a Log row each. Returns how many mails moved."""
    rule = MOVES[trigger]
    if to not in (rule.targets or (None,)):
        raise ValueError(f"{trigger!r} moves no mail to {to!r}")
    if to is not None:
        fields["state"] = to
    if rule.counted:
        fields["failed_attempts"] = attempts
    deliveries = guarded(rule, ids, version)
    now = timezone.now()
    with transaction.atomic(savepoint=False) if rule.status or len(ids) > 1 else nullcontext():
        moved = deliveries.update(version=F("version") + 1, changed=now, **fields)
        if moved and rule.status:
            status = post_office_status(to, attempts)
            retries = {"number_of_retries": attempts} if rule.counted else {}
            Email.objects.filter(pk__in=ids).update(status=status, last_updated=now, **retries)
        if moved and log is not None:
            write_log(ids, to, log)
    return moved


def guarded(rule, ids, version):
    """The delivery rows of `ids` a move may change: in one of its states, at `version`.

    Several mails' rows are locked in the order of their ids, as the worker's shared
    transactions write them (group_commit.py): an UPDATE alone locks them in the order it
    finds them, and two writers of the same rows in other orders can deadlock."""
    deliveries = Delivery.objects.filter(email_id__in=ids)
    if rule.sources is not ANY:
        deliveries = deliveries.filter(state__in=rule.sources)
    if version is not None:
        deliveries = deliveries.filter(version=version)
    if len(ids) > 1:
        in_order = deliveries.order_by("email_id").select_for_update().values("email_id")
        deliveries = Delivery.objects.filter(email_id__in=in_order)
    return deliveries


def write_log(ids, to, note):
    """A Log row for each mail; a failed attempt's with its outcome (retrying or failed)."""
    status = STATUS.sent if to == State.SENT else STATUS.failed
    logs = Log.objects.bulk_create(
        Log(email_id=pk, status=status, message=note.message, exception_type=note.exception_type)
        for pk in ids
    )
    if status == STATUS.failed:
        outcome = Outcome.RETRYING if to == State.RETRYING else Outcome.FAILED
        LogOutcome.objects.bulk_create(LogOutcome(log=log, outcome=outcome) for log in logs)


def post_office_status(state, failed_attempts):
    """post_office's status for a state: it knows sent, failed, queued and requeued."""
    if state == State.SENT:
        return STATUS.sent
    if state in (State.FAILED, State.EXPIRED):
        return STATUS.failed
    return STATUS.requeued if failed_attempts else STATUS.queued


def record(emails, grace=policy.HANDOFF_GRACE):
    """Mails that came in through any door: queued (due for the sweeper after `grace`, unless
    handed off before), or scheduled if their time is ahead."""
    now = timezone.now()
    deliveries = [delivery_for(email, now, grace) for email in emails]
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    # post_office leaves mail it would send in the request (priority "now") without a status.
    unmarked = [email.pk for email in emails if email.status is None]
    if unmarked:
        Email.objects.filter(pk__in=unmarked, status=None).update(status=STATUS.queued)


def delivery_for(email, now, grace):
    scheduled = as_stored(email.scheduled_time)
    lane = lane_of(email.priority, email.headers)
    if policy.is_ahead(scheduled, now):
        return Delivery(
            email_id=email.pk, state=State.SCHEDULED, due=scheduled, changed=now, lane=lane
        )
    return Delivery(email_id=email.pk, state=State.QUEUED, due=now + grace, changed=now, lane=lane)


def adopt():
    """Record the post_office mails waiting to be sent that no door told us about; how many."""
    orphans = list(
        Email.objects.filter(status__in=(STATUS.queued, STATUS.requeued), delivery=None).only(
            "pk", "scheduled_time", "status", "priority", "headers"
        )
    )
    record(orphans, grace=timedelta(0))
    return len(orphans)


def waiting(ids):
    """{id: version} of the mails among `ids` still waiting for a worker."""
    return dict(
        Delivery.objects.filter(email_id__in=ids, state__in=PENDING).values_list(
            "email_id", "version"
        )
    )


def handed_off(versions):
    """Tasks for these mails ({id: version} read before publishing) are in the broker. A
    mail that changed since (a worker took it already) keeps its new state."""
    due = timezone.now() + settings.MAIL_HANDOFF_TIMEOUT
    for version, ids in by_version(versions):
        move("handed off", ids, State.HANDED_OFF, version=version, due=due)


def left_behind(versions):
    """The broker did not take these mails: the sweeper's next run hands them out."""
    now = timezone.now()
    for version, ids in by_version(versions):
        move("left behind", ids, version=version, due=now)


def by_version(versions):
    """[(version, [ids])]: the mails of one version move in one UPDATE."""
    groups = {}
    for pk, version in versions.items():
        groups.setdefault(version, []).append(pk)
    return groups.items()


def takeable(email, message_id, now):
    """Whether a mail as read may be taken by the task that names it by `message_id`: it is
    waiting for a worker (or its scheduled time came), is not expired, and is that mail."""
    delivery = getattr(email, "delivery", None)
    if delivery is None or email.message_id != message_id:
        return False
    if email.expires_at is not None and email.expires_at <= now:
        return False
    if delivery.state == State.SCHEDULED:
        return email.scheduled_time is not None and email.scheduled_time <= now
    return delivery.state in TAKEABLE


def take(email):
    """A worker takes a mail it read to send it now; False if the mail changed since."""
    due = timezone.now() + settings.MAIL_SENDING_TIMEOUT
    version = email.delivery.version
    return bool(move("taken", [email.pk], State.SENDING, version=version, due=due))


def sent(email_id, refused, tracked=()):
    """The server accepted the mail for every recipient but those in `refused`
    ({address: its answer}). Written whatever the state: it is what happened. `tracked`:
    the recipients whose delivery events the email service will post (recipients.events)."""
    note = "; ".join(f"refused {address}: {answer}" for address, answer in refused.items())
    logged = get_log_level() >= 2 or (refused and get_log_level() >= 1)
    done = {"due": None, "fault": Fault.NONE, "reason": note, "refused": refused}
    with transaction.atomic(savepoint=False):
        move("sent", [email_id], State.SENT, log=Note(note) if logged else None, **done)
        events.expect(email_id, tracked)


def withheld(email_id, refused):
    """Every recipient of the mail being sent is suppressed ({address: why}): failed,
    nothing was handed to the server."""
    note = "; ".join(f"{address} {why}" for address, why in refused.items())
    message = f"refused: not sent, every recipient is suppressed: {note}"
    log = Note(message, "Suppressed") if get_log_level() >= 1 else None
    failed = {"due": None, "fault": Fault.REFUSED, "reason": note, "refused": refused}
    move("withheld", [email_id], State.FAILED, log=log, **failed)


def attempt_failed(email_id, answer, error_type, fault, celery_retries_left):
    """Write a failed attempt (the server's `answer`, the exception's type name); return True
    if Celery should retry the mail now. What follows: policy.after_failure."""
    delivery = Delivery.objects.select_related("email").get(email_id=email_id)
    attempts = delivery.failed_attempts + 1
    then = policy.after_failure(
        fault,
        answer,
        timezone.now(),
        policy.mail_time(delivery.email.created, delivery.email.scheduled_time),
        get_retry_timedelta(),
        settings.MAIL_GIVE_UP_AFTER,
        celery_retries_left,
    )
    log = Note(then.note, error_type) if get_log_level() >= 1 else None
    failed = {"due": then.due, "fault": fault, "reason": answer}
    if not move("failed attempt", [email_id], then.state, attempts=attempts, log=log, **failed):
        return False  # the sweeper gave the mail to another worker meanwhile
    return celery_retries_left and then.state == State.RETRYING


def held(email_id, until, why, answer=None):
    """The provider's limits hold the mail back (pace.py) until `until`, or the provider
    throttled it (`answer`): it waits, with no failed attempt counted, and goes back in
    line then. Returns whether the mail was still this worker's to hold."""
    fields = {"due": until, "reason": why}
    if answer is not None:
        fields.update(fault=Fault.THROTTLED, reason=f"throttled: {answer}")
    return bool(move("held", [email_id], State.HELD, **fields))


def expire():
    """Mails still waiting when their expires_at passed: expired, never sent; how many."""
    waiting = Delivery.objects.filter(state__in=PENDING, email__expires_at__lte=timezone.now())
    return move_all(
        "expired", waiting, State.EXPIRED, Note("expired before it could be sent", "Expired")
    )


def rescue_interrupted():
    """Mails whose worker died while sending them: retried at once; how many."""
    stale = Delivery.objects.filter(state=State.SENDING, due__lte=timezone.now())
    note = Note("interrupted while sending; the server may have accepted it", "Interrupted")
    return move_all("interrupted", stale, State.RETRYING, note)


def move_all(trigger, deliveries, to, note):
    """Move the deliveries no other process holds to `to`, each with a Log row."""
    with transaction.atomic():
        ids = list(
            deliveries.select_for_update(skip_locked=True).values_list("email_id", flat=True)
        )
        due = timezone.now() if to == State.RETRYING else None
        move(trigger, ids, to, attempts=1, log=note, due=due, reason=note.message)
    return len(ids)


def lease(ids, until):
    """A sweeper claimed these mails to hand them out: no other claims them before `until`."""
    move("leased", ids, due=until)


def send_again(email_id):
    """Hand a mail out again now, whatever happened to it. Returns whether it was done, and
    a sentence that says what. A mail being sent right now is left alone."""
    with transaction.atomic():
        if not Delivery.objects.filter(email_id=email_id).exists():
            record(Email.objects.filter(pk=email_id))
        delivery = Delivery.objects.select_for_update().get(email_id=email_id)
        if delivery.state == State.SENDING:
            return False, "it is being sent right now: nothing was done"
        to = State.RETRYING if delivery.state == State.RETRYING else State.QUEUED
        due = timezone.now() + policy.HANDOFF_GRACE
        move("sent again", [email_id], to, attempts=delivery.failed_attempts, due=due)
    return True, f"it was {delivery.get_state_display()}; it is handed to a worker again"


def rescheduled(email_id):
    """After an edit of a waiting mail's scheduled time: scheduled if the time is ahead,
    else queued for a hand-off now."""
    now = timezone.now()
    scheduled = Email.objects.values_list("scheduled_time", flat=True).get(pk=email_id)
    ahead = policy.is_ahead(scheduled, now)
    to, due = (State.SCHEDULED, scheduled) if ahead else (State.QUEUED, now)
    move("rescheduled", [email_id], to, due=due)
