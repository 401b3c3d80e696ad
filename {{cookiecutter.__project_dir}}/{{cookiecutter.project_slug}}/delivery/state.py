"""Every change of a mail's state, and the only code that writes one.

    queued ──▶ handed off ──▶ sending ──▶ sent
      ▲            ▲             │
    (any door)  scheduled        ├──▶ retrying ──▶ (handed off again, or taken by Celery's retry)
                                 ├──▶ held ──▶ (handed off again when the limits allow)
                                 └──▶ failed
    a mail still waiting past its expires_at ──▶ expired

Each function moves mails with one conditional UPDATE, so two processes never move the
same mail the same way twice, and writes post_office's own status (and a Log row) with it,
so post_office's admin, API and commands see the same thing. `Delivery.due` says when the
sweeper acts on a mail (see models.Delivery).
"""

import smtplib
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from post_office.models import STATUS, Email, Log
from post_office.settings import get_log_level, get_retry_timedelta

from ..recipients.models import Recipient
from .lanes import lane_of
from .models import Delivery, Fault, State

PENDING = (State.QUEUED, State.SCHEDULED, State.HANDED_OFF, State.RETRYING, State.HELD)
TAKEABLE = (State.QUEUED, State.HANDED_OFF, State.RETRYING, State.HELD)
FINAL = (State.SENT, State.FAILED, State.EXPIRED)
# A mail its own process did not hand off within this time is handed out by the sweeper.
HANDOFF_GRACE = timedelta(minutes=1)
# A sweeper that claimed mails has this long to hand them out before another may.
SWEEP_LEASE = timedelta(minutes=2)
# While Celery retries a mail itself, the sweeper waits this much longer than the retry.
RETRY_GRACE = timedelta(minutes=1)


def move(deliveries, now, **fields):
    """Change the deliveries; every change counts up their version. Returns how many."""
    return deliveries.update(version=F("version") + 1, changed=now, **fields)


def post_office_status(state, failed_attempts):
    """post_office's status for a state: it knows sent, failed, queued and requeued."""
    if state == State.SENT:
        return STATUS.sent
    if state in (State.FAILED, State.EXPIRED):
        return STATUS.failed
    return STATUS.requeued if failed_attempts else STATUS.queued


def record(emails, grace=HANDOFF_GRACE):
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
    if is_ahead(scheduled, now):
        return Delivery(
            email_id=email.pk, state=State.SCHEDULED, due=scheduled, changed=now, lane=lane
        )
    return Delivery(email_id=email.pk, state=State.QUEUED, due=now + grace, changed=now, lane=lane)


def is_ahead(moment, now):
    return moment is not None and moment > now


def as_stored(moment):
    """A time as the database holds it: post_office takes naive times too, which Django
    stores in the default time zone."""
    if moment is not None and settings.USE_TZ and timezone.is_naive(moment):
        return timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


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
    now = timezone.now()
    for version, ids in by_version(versions):
        untouched = Delivery.objects.filter(email_id__in=ids, version=version, state__in=PENDING)
        move(untouched, now, state=State.HANDED_OFF, due=now + settings.MAIL_HANDOFF_TIMEOUT)


def left_behind(versions):
    """The broker did not take these mails: the sweeper's next run hands them out."""
    now = timezone.now()
    for version, ids in by_version(versions):
        move(
            Delivery.objects.filter(email_id__in=ids, version=version, state__in=PENDING),
            now,
            due=now,
        )


def by_version(versions):
    """[(version, [ids])]: the mails of one version move in one UPDATE."""
    groups = {}
    for pk, version in versions.items():
        groups.setdefault(version, []).append(pk)
    return groups.items()


def for_sending(ids):
    """{id: post_office Email} of these mails, read in one go with what sending needs: the
    delivery state, the template, the attachments."""
    emails = Email.objects.select_related("delivery", "template").prefetch_related("attachments")
    return {email.pk: email for email in emails.filter(pk__in=ids)}


def take(email, message_id):
    """A worker takes a mail it read (for_sending) to send it now. Returns the mail as taken,
    or None if it is not waiting for a worker (or for its scheduled time), is expired, or is
    not the mail the task names (its Message-ID differs)."""
    now = timezone.now()
    while email is not None and takeable(email, message_id, now):
        unchanged = Delivery.objects.filter(email_id=email.pk, version=email.delivery.version)
        if move(unchanged, now, state=State.SENDING, due=now + settings.MAIL_SENDING_TIMEOUT):
            return email
        email = for_sending([email.pk]).get(email.pk)  # it changed since it was read
    return None


def takeable(email, message_id, now):
    delivery = getattr(email, "delivery", None)
    if delivery is None or email.message_id != message_id:
        return False
    if email.expires_at is not None and email.expires_at <= now:
        return False
    if delivery.state == State.SCHEDULED:
        return email.scheduled_time is not None and email.scheduled_time <= now
    return delivery.state in TAKEABLE


def sent(email_id, refused, tracked=()):
    """The server accepted the mail for every recipient but those in `refused`
    ({address: its answer}). Written whatever the state: it is what happened. `tracked`:
    [(address, email service, its message id)] for the recipients whose delivery events
    the service will post (recipients.events)."""
    now = timezone.now()
    note = "; ".join(f"refused {address}: {answer}" for address, answer in refused.items())
    with transaction.atomic():
        done = {"state": State.SENT, "due": None, "fault": Fault.NONE, "reason": note}
        move(Delivery.objects.filter(email_id=email_id), now, refused=refused, **done)
        Email.objects.filter(pk=email_id).update(status=STATUS.sent, last_updated=now)
        if get_log_level() >= 2 or (refused and get_log_level() >= 1):
            Log.objects.create(email_id=email_id, status=STATUS.sent, message=note)
        Recipient.objects.bulk_create(
            [
                Recipient(email_id=email_id, address=address, provider=service, message_id=id_)
                for address, service, id_ in tracked
            ],
            ignore_conflicts=True,
        )


def withheld(email_id, refused):
    """Every recipient of the mail being sent is suppressed ({address: why}): failed,
    nothing was handed to the server."""
    now = timezone.now()
    note = "; ".join(f"{address} {why}" for address, why in refused.items())
    with transaction.atomic():
        sending = Delivery.objects.filter(email_id=email_id, state=State.SENDING)
        failed = {"state": State.FAILED, "due": None, "fault": Fault.REFUSED, "reason": note}
        if not move(sending, now, refused=refused, **failed):
            return
        Email.objects.filter(pk=email_id).update(status=STATUS.failed, last_updated=now)
        if get_log_level() >= 1:
            message = f"refused: not sent, every recipient is suppressed: {note}"
            Log.objects.create(
                email_id=email_id,
                status=STATUS.failed,
                message=message,
                exception_type="Suppressed",
            )


def attempt_failed(email_id, error, fault, celery_retries_left):
    """Write a failed attempt; return True if Celery should retry the mail now.

    A refusal fails the mail. A passing failure is retried, by Celery while it has
    retries left, then by the sweeper every MAIL_RETRY_INTERVAL, until MAIL_GIVE_UP_AFTER
    has passed since the mail's time (its scheduled time, or when it was written). A
    fault of the site's setup (credentials, the sender the server refuses) is retried
    until the setup is fixed.
    """
    now = timezone.now()
    delivery = Delivery.objects.select_related("email").get(email_id=email_id)
    answer = answer_of(error)
    attempts = delivery.failed_attempts + 1
    # A mail scheduled days ahead is not given up at its first passing failure.
    since = max(delivery.email.created, delivery.email.scheduled_time or delivery.email.created)
    if fault == Fault.REFUSED:
        state, due, note = State.FAILED, None, f"refused: {answer}"
    elif fault == Fault.PASSING and now - since > settings.MAIL_GIVE_UP_AFTER:
        state, due, note = (
            State.FAILED,
            None,
            f"gave up after {settings.MAIL_GIVE_UP_AFTER}: {answer}",
        )
    else:
        retry_at = now + get_retry_timedelta()
        state, due = State.RETRYING, retry_at + RETRY_GRACE if celery_retries_left else retry_at
        kind = "setup" if fault == Fault.SETUP else "retrying"
        note = f"{kind}, next attempt at {timezone.localtime(retry_at):%H:%M:%S}: {answer}"
    with transaction.atomic():
        sending = Delivery.objects.filter(email_id=email_id, state=State.SENDING)
        failed = {"state": state, "due": due, "fault": fault, "reason": answer}
        if not move(sending, now, failed_attempts=attempts, **failed):
            return False  # the sweeper gave the mail to another worker meanwhile
        Email.objects.filter(pk=email_id).update(
            status=post_office_status(state, attempts), number_of_retries=attempts, last_updated=now
        )
        if get_log_level() >= 1:
            Log.objects.create(
                email_id=email_id,
                status=STATUS.failed,
                message=note,
                exception_type=type(error).__name__,
            )
    return celery_retries_left and state == State.RETRYING


def held(email_id, until, why, answer=None):
    """The provider's limits hold the mail back (pace.py) until `until`, or the provider
    throttled it (`answer`): it waits, with no failed attempt counted, and goes back in
    line then. Returns whether the mail was still this worker's to hold."""
    now = timezone.now()
    fields = {"state": State.HELD, "due": until, "reason": why}
    if answer is not None:
        fields.update(fault=Fault.THROTTLED, reason=f"throttled: {answer}")
    sending = Delivery.objects.filter(email_id=email_id, state=State.SENDING)
    return bool(move(sending, now, **fields))


def answer_of(error):
    """What the server or the service said, as a line: "451 4.3.0 Try again later"."""
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {answer.decode(errors='replace')}"
            for address, (code, answer) in error.recipients.items()
        )
    return str(error) or repr(error)


def expire():
    """Mails still waiting when their expires_at passed: expired, never sent; how many."""
    waiting = Delivery.objects.filter(state__in=PENDING, email__expires_at__lte=timezone.now())
    return move_all(waiting, State.EXPIRED, "expired before it could be sent", "Expired")


def rescue_interrupted():
    """Mails whose worker died while sending them: retried at once; how many."""
    stale = Delivery.objects.filter(state=State.SENDING, due__lte=timezone.now())
    note = "interrupted while sending; the server may have accepted it"
    return move_all(stale, State.RETRYING, note, "Interrupted")


def move_all(deliveries, state, note, exception_type):
    """Move the deliveries no other process holds to `state`, each with a Log row."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            deliveries.select_for_update(skip_locked=True).values_list("email_id", flat=True)
        )
        due = now if state == State.RETRYING else None
        move(Delivery.objects.filter(email_id__in=ids), now, state=state, due=due, reason=note)
        status = post_office_status(state, failed_attempts=1)
        Email.objects.filter(pk__in=ids).update(status=status, last_updated=now)
        Log.objects.bulk_create(
            Log(email_id=pk, status=STATUS.failed, message=note, exception_type=exception_type)
            for pk in ids
        )
    return len(ids)


def claim_due(limit, states=PENDING):
    """Take up to `limit` mails whose `due` has passed, for this sweeper to hand out.

    Rows another sweeper holds are skipped, and a claimed mail is not due again for
    SWEEP_LEASE, so sweepers on several hosts share the backlog instead of handing out
    the same mail twice. Returns [(id, Message-ID, priority, version, lane)], highest
    priority first.
    """
    now = timezone.now()
    fields = ("email_id", "email__message_id", "email__priority", "version", "lane")
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state__in=states, due__lte=now)
            .exclude(email__expires_at__lte=now)
            .order_by("-email__priority", "email_id")
            .values_list(*fields)[:limit]
        )
        move(
            Delivery.objects.filter(email_id__in=[row[0] for row in due]),
            now,
            due=now + SWEEP_LEASE,
        )
    return [
        (pk, message_id, priority or 0, version + 1, lane)
        for pk, message_id, priority, version, lane in due
    ]


def send_again(email_id):
    """Hand a mail out again now, whatever happened to it. Returns whether it was done, and
    a sentence that says what. A mail being sent right now is left alone."""
    now = timezone.now()
    with transaction.atomic():
        if not Delivery.objects.filter(email_id=email_id).exists():
            record(Email.objects.filter(pk=email_id))
        delivery = Delivery.objects.select_for_update().get(email_id=email_id)
        if delivery.state == State.SENDING:
            return False, "it is being sent right now: nothing was done"
        state = State.RETRYING if delivery.state == State.RETRYING else State.QUEUED
        move(Delivery.objects.filter(email_id=email_id), now, state=state, due=now + HANDOFF_GRACE)
        status = post_office_status(state, delivery.failed_attempts)
        Email.objects.filter(pk=email_id).update(status=status, last_updated=now)
    return True, f"it was {delivery.get_state_display()}; it is handed to a worker again"


def rescheduled(email_id):
    """After an edit of a waiting mail's scheduled time: scheduled if the time is ahead,
    else queued for a hand-off now."""
    now = timezone.now()
    scheduled = Email.objects.values_list("scheduled_time", flat=True).get(pk=email_id)
    ahead = is_ahead(scheduled, now)
    move(
        Delivery.objects.filter(email_id=email_id, state__in=PENDING),
        now,
        state=State.SCHEDULED if ahead else State.QUEUED,
        due=scheduled if ahead else now,
    )
