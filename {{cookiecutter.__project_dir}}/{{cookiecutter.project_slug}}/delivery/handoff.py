"""Hands mails to the broker, as tasks (task.py), from a thread of the process that wrote
them: a request never waits for RabbitMQ.

A task names each mail by its row's id and Message-ID and carries nothing else; the
worker reads the mail, attachments included, from the database and the media storage.
A mail this process could not hand off (the broker is down, or the process died first)
is due for the sweeper soon after (policy.HANDOFF_GRACE).
"""

import atexit
import logging
import queue
import threading
import time
from datetime import datetime
from itertools import batched, groupby
from typing import NamedTuple

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from . import lanes, state, task
from .models import Lane, as_stored

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


class Committed(NamedTuple):
    """A mail just written, as its hand-off needs it."""

    pk: int
    message_id: str | None
    priority: int | None
    scheduled: datetime | None
    expires: datetime | None
    lane: str


class Mail(NamedTuple):
    """A mail to publish: what its task names, how it is routed, the version it was read at."""

    pk: int
    message_id: str | None
    priority: int
    version: int
    lane: str


def after_commit(emails):
    """Hand these mails to the broker once the current transaction commits."""
    mails = [
        Committed(
            email.pk,
            email.message_id,
            email.priority,
            as_stored(email.scheduled_time),
            as_stored(email.expires_at),
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
    """Publish the mails (Committed) whose time has come, if they still wait; the others wait
    for the sweeper."""
    now = timezone.now()
    due = {
        mail.pk: mail
        for mail in mails
        if not (mail.scheduled and mail.scheduled > now)
        and not (mail.expires and mail.expires <= now)
    }
    versions = state.waiting(list(due))
    publish(
        [
            Mail(pk, due[pk].message_id, due[pk].priority or 0, version, due[pk].lane)
            for pk, version in versions.items()
        ]
    )


def publish(mails):
    """Publish [Mail], a task per chunk, lane and priority; note on each mail whether the
    broker took it. Returns how many it took."""
    global _broker_paused_until
    versions = {mail.pk: mail.version for mail in mails}
    if time.monotonic() < _broker_paused_until:
        state.left_behind(versions)
        return 0
    mails = [mail._replace(priority=broker_priority(mail.priority)) for mail in mails]
    in_order = sorted(mails, key=lambda mail: (mail.lane == Lane.BULK, -mail.priority))
    chunks = [
        (lane, priority, chunk)
        for (lane, priority), same in groupby(in_order, key=lambda mail: (mail.lane, mail.priority))
        # A bulk task carries one mail: it never holds a worker's thread for ten slots.
        for chunk in batched(same, 1 if lane == Lane.BULK else settings.CELERY_EMAIL_CHUNK_SIZE)
    ]
    taken = []
    for lane, priority, chunk in chunks:
        try:
            named = [(mail.pk, mail.message_id) for mail in chunk]
            task.publish(named, lanes.queue_of(lane), priority)
        except Exception:
            logger.exception("Broker unreachable; the sweeper will hand these mails out later")
            _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
            break
        taken += [mail.pk for mail in chunk]
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
