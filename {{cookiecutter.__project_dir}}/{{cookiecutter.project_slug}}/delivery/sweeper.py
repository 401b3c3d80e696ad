"""The sweeper: hands out every mail whose `due` has passed, from cron or deploy/bin/sweep,
and the held mail whose time came, from a thread of the worker (release_at). Safe on several
hosts at once: a sweeper claims its mails for a while (a lease) before it hands them out."""

import logging
import threading
import time
from dataclasses import dataclass

from django.db import close_old_connections, transaction
from django.db.models import Min
from django.utils import timezone

from . import handoff, policy, state
from .models import Delivery, State

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# Held mails go back in line in batches of this size.
RELEASE_BATCH_SIZE = handoff.BATCH_SIZE


@dataclass
class Sweep:
    handed_off: int = 0
    left: int = 0  # due, but the broker was unreachable
    interrupted: int = 0
    expired: int = 0
    adopted: int = 0  # post_office rows no door recorded (written around post_office's API)


def sweep():
    done = Sweep(
        adopted=state.adopt(), expired=state.expire(), interrupted=state.rescue_interrupted()
    )
    while batch := claim_due(BATCH_SIZE):
        taken = handoff.publish(batch)
        done.handed_off += taken
        if taken < len(batch):
            done.left = len(batch) - taken
            break
    return done


def claim_due(limit, states=state.PENDING):
    """Take up to `limit` mails whose `due` has passed, for this sweeper to hand out.

    Rows another sweeper holds are skipped, and a claimed mail is not due again for
    policy.SWEEP_LEASE, so sweepers on several hosts share the backlog instead of handing
    out the same mail twice. Returns [handoff.Mail], highest priority first.
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
        state.lease([row[0] for row in due], now + policy.SWEEP_LEASE)
    return [
        handoff.Mail(pk, message_id, priority or 0, version + 1, lane)
        for pk, message_id, priority, version, lane in due
    ]


_release = threading.Condition()
_release_at = None  # epoch seconds: when this process next releases held mail
_releaser = None


def release_at(moment):
    """Put the mails held until `moment` (epoch seconds) back in line then, from a thread
    of this process (sweep() does it too, every SWEEP_INTERVAL)."""
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
    while batch := claim_due(RELEASE_BATCH_SIZE, states=(State.HELD,)):
        if handoff.publish(batch) < len(batch):  # the broker is away: try after its pause
            release_at(time.time() + handoff.BROKER_PAUSE_SECONDS)
            return
        if len(batch) < RELEASE_BATCH_SIZE:
            break
    upcoming = Delivery.objects.filter(state=State.HELD).aggregate(Min("due"))["due__min"]
    if upcoming is not None:
        release_at(upcoming.timestamp())
