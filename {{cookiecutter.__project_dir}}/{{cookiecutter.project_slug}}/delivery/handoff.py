"""Hands mails to the broker, as django-celery-email tasks, from a thread of the process
that wrote them: a request never waits for RabbitMQ.

A task names each mail by its row's id and Message-ID and carries nothing else; the
worker reads the mail, attachments included, from the database and the media storage.
A mail this process could not hand off (the broker is down, or the process died first)
is due for the sweeper soon after (state.HANDOFF_GRACE). Mail the provider's limits hold
back goes back in line from a thread of the worker when its time comes (release_at).
"""

import atexit
import logging
import queue
import threading
import time
from itertools import batched, groupby

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import close_old_connections, transaction
from django.db.models import Min
from django.utils import timezone
from djcelery_email.tasks import send_emails
from djcelery_email.utils import email_to_dict

from . import lanes, state
from .models import Delivery, Lane, State

logger = logging.getLogger(__name__)

# Mails that pile up while the broker is slow go out together, in fewer tasks.
BATCH_SIZE = 100
# How long the hand-off waits for more mails before it publishes what it has.
LINGER_SECONDS = 0.02
# After the broker could not be reached, this process leaves it alone for a while:
# requests keep returning at once and their mail waits for the sweeper.
BROKER_PAUSE_SECONDS = 10
_broker_paused_until = 0.0

_pending = queue.Queue()
_start = threading.Lock()
_thread = None


def after_commit(emails):
    """Hand these mails to the broker once the current transaction commits."""
    mails = [
        (
            email.pk,
            email.message_id,
            email.priority,
            state.as_stored(email.scheduled_time),
            state.as_stored(email.expires_at),
            lanes.lane_of(email.priority, email.headers),
        )
        for email in emails
    ]
    transaction.on_commit(lambda: _submit(mails))


def _submit(mails):
    global _thread
    with _start:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_hand_off_forever, name="mail-handoff", daemon=True)
            _thread.start()
    _pending.put(mails)


def _hand_off_forever():
    while True:
        batches = [_pending.get()]
        # Mails committed meanwhile go out with it, in fewer tasks: less work for the worker.
        until = time.monotonic() + LINGER_SECONDS
        while len(batches) < BATCH_SIZE:
            try:
                batches.append(_pending.get(timeout=max(0.0, until - time.monotonic())))
            except queue.Empty:
                break
        close_old_connections()
        try:
            hand_off_due([mail for batch in batches for mail in batch])
        except Exception:
            logger.exception("Could not hand mails off; the sweeper will")
        finally:
            for _ in batches:
                _pending.task_done()


def flush(timeout=10.0):
    """Wait until every mail this process committed is handed off (or left for the sweeper)."""
    with _pending.all_tasks_done:
        _pending.all_tasks_done.wait_for(lambda: not _pending.unfinished_tasks, timeout)


atexit.register(flush)


def hand_off_due(mails):
    """Publish the mails whose time has come, if they still wait; the others wait for the
    sweeper."""
    now = timezone.now()
    due = {
        pk: (message_id, priority)
        for pk, message_id, priority, scheduled, expires, lane in mails
        if not (scheduled and scheduled > now) and not (expires and expires <= now)
    }
    lane_of = {pk: lane for pk, *_, lane in mails}
    versions = state.waiting(list(due))
    publish([(pk, *due[pk], version, lane_of[pk]) for pk, version in versions.items()])


def publish(mails):
    """Publish [(id, Message-ID, priority, version, lane)], a task per chunk, lane and
    priority; note on each mail whether the broker took it. Returns how many it took."""
    global _broker_paused_until
    versions = {pk: version for pk, _, _, version, _ in mails}
    if time.monotonic() < _broker_paused_until:
        state.left_behind(versions)
        return 0
    mails = [
        (pk, message_id, broker_priority(priority), version, lane)
        for pk, message_id, priority, version, lane in mails
    ]
    in_order = sorted(mails, key=lambda mail: (mail[4] == Lane.BULK, -mail[2]))
    chunks = [
        (lane, priority, chunk)
        for (lane, priority), same in groupby(in_order, key=lambda mail: (mail[4], mail[2]))
        # A bulk task carries one mail: it never holds a worker's thread for ten slots.
        for chunk in batched(same, 1 if lane == Lane.BULK else settings.CELERY_EMAIL_CHUNK_SIZE)
    ]
    taken = []
    for lane, priority, chunk in chunks:
        ids = [pk for pk, *_ in chunk]
        try:
            send_emails.apply_async(
                ([task_message(pk, message_id) for pk, message_id, *_ in chunk], {}),
                {"using": "deliver"},
                queue=lanes.queue_of(lane),
                priority=priority,
                # What workers log for the task: the mails' ids.
                argsrepr=f"(mails {', '.join(map(str, ids))})",
                kwargsrepr="",
            )
        except Exception:
            logger.exception("Broker unreachable; the sweeper will hand these mails out later")
            _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
            break
        taken += ids
    state.handed_off({pk: versions[pk] for pk in taken})
    state.left_behind({pk: version for pk, version in versions.items() if pk not in taken})
    return len(taken)


def broker_priority(priority):
    """RabbitMQ's priority for post_office's (low 0, medium 1, high 2, now 3). A classic queue
    keeps the four levels; a quorum queue has two: high and now go before low and medium."""
    priority = priority or 0
    if settings.RABBITMQ_QUEUE_TYPE == "quorum":
        return 5 if priority >= 2 else 0  # a quorum queue treats 5 and above as high
    return priority


def task_message(pk, message_id):
    """What django-celery-email's task carries for a mail: only what names it. (No
    recipients: nothing but the worker's mailer, which reads the row, can send it.)"""
    stub = EmailMessage(headers={"Message-ID": message_id} if message_id else {})
    stub.email_id = pk
    return email_to_dict(stub)


_release = threading.Condition()
_release_at = None  # epoch seconds: when this process next releases held mail
_releaser = None


def release_at(moment):
    """Put the mails held until `moment` (epoch seconds) back in line then, from a thread
    of this process (the sweeper does it too, every SWEEP_INTERVAL)."""
    global _release_at, _releaser
    with _release:
        if _release_at is None or moment < _release_at:
            _release_at = moment
            _release.notify()
        if _releaser is None or not _releaser.is_alive():
            _releaser = threading.Thread(target=_release_forever, name="mail-release", daemon=True)
            _releaser.start()


def _release_forever():
    global _release_at
    while True:
        with _release:
            while _release_at is None or _release_at > time.time():
                _release.wait(None if _release_at is None else _release_at - time.time())
            _release_at = None
        close_old_connections()
        try:
            release_held()
        except Exception:
            logger.exception("Could not put held mail back in line; the sweeper will")


def release_held():
    """Hand the held mails whose time has come to the broker; wake again for the next."""
    while batch := state.claim_due(BATCH_SIZE, states=(State.HELD,)):
        if publish(batch) < len(batch):  # the broker is away: try again after its pause
            release_at(time.time() + BROKER_PAUSE_SECONDS)
            return
        if len(batch) < BATCH_SIZE:
            break
    upcoming = Delivery.objects.filter(state=State.HELD).aggregate(Min("due"))["due__min"]
    if upcoming is not None:
        release_at(upcoming.timestamp())
