"""The worker's counts of attempts, kept in memory and added to the Tally rows every few
seconds by a thread the worker starts when it consumes, with its heartbeat.

The counts live in the database, not in each process's memory (prometheus_client's own
counters), so that every web process answers /metrics alike, several workers add up, and a
restarted worker does not start from zero: a worker killed outright loses its last
FLUSH_EVERY seconds of counts, never the total.
"""

import atexit
import contextlib
import logging
import os
import socket
import threading
from collections import Counter

from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client.utils import floatToGoString

from ..delivery.models import Delivery, State
from .models import Heartbeat, Tally

logger = logging.getLogger(__name__)

FLUSH_EVERY = 5  # seconds
# Upper bounds (seconds) of the histogram of the time from send_mail() to the server's acceptance.
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, float("inf"))
# The fields of the delivery row that label a mail's series.
PER_LANE = ("lane",)
FINAL = (State.SENT, State.FAILED, State.EXPIRED)

_pending = Counter()  # (metric, labels): what to add to its Tally row
_known = set()  # the Tally rows this process has seen exist
_lock = threading.Lock()
_stopping = threading.Event()
_flusher = None
_worker = None  # this worker's name, once it consumes


@contextlib.contextmanager
def attempt(email):
    """Count the worker's attempt to send a mail it took, by what its row says after."""
    try:
        yield
    finally:
        try:
            count_outcome(email)
        except Exception:  # counting never stands in the way of the mail, or of its error
            logger.warning("Attempt on mail %s not counted for /metrics", email.pk, exc_info=True)


def count_outcome(email):
    fields = ("state", "fault", "changed", *PER_LANE)
    row = Delivery.objects.filter(email_id=email.pk).values(*fields).first()
    if row is None or row["state"] == State.SENDING:
        return  # the attempt broke off before an outcome was written: nothing to count
    lane = {field: row[field] for field in PER_LANE}
    sent = row["state"] == State.SENT
    add("mail_attempts", outcome="sent" if sent else row["fault"] or "unknown", **lane)
    if row["state"] in FINAL:
        add("mail_finished", state=row["state"], **lane)
    if sent:
        since = email.scheduled_time if email.scheduled_time else email.created
        observe_time_to_server(max((row["changed"] - since).total_seconds(), 0), lane)


def observe_time_to_server(seconds, lane):
    bound = next(bound for bound in BUCKETS if seconds <= bound)
    add("mail_time_to_server_seconds_bucket", le=format_bound(bound), **lane)
    add("mail_time_to_server_seconds_sum", value=seconds, **lane)


def format_bound(bound):
    """A bucket's bound as prometheus_client writes it: 1.0, 0.25, +Inf."""
    return floatToGoString(bound)


def add(metric, value=1, **labels):
    key = (metric, ",".join(f"{name}={labels[name]}" for name in sorted(labels)))
    with _lock:
        _pending[key] += value


def flush():
    """Add what this process counted to the Tally rows, in one transaction; kept for the next
    flush if the database does not take it."""
    with _lock:
        counts = dict(_pending)
        _pending.clear()
    if not counts:
        return
    try:
        with transaction.atomic():
            new = [Tally(name=name, labels=labels) for name, labels in set(counts) - _known]
            Tally.objects.bulk_create(new, ignore_conflicts=True)
            # In one order in every process, so that two flushes never wait for each other's rows.
            for (name, labels), value in sorted(counts.items()):
                Tally.objects.filter(name=name, labels=labels).update(value=F("value") + value)
        _known.update(counts)
    except Exception:
        logger.warning("Counts for /metrics not written; tried again later", exc_info=True)
        with _lock:
            _pending.update(counts)


def beat():
    if _worker:
        Heartbeat.objects.update_or_create(worker=_worker, defaults={"seen": timezone.now()})


def run():
    while True:
        try:
            close_old_connections()
            beat()
            flush()
        except Exception:
            logger.warning("Heartbeat for /metrics not written", exc_info=True)
        if _stopping.wait(FLUSH_EVERY):
            return


def start(sender=None, **kwargs):
    """The worker consumes: beat from now on, as the worker's node name (Celery's worker_ready)."""
    global _worker
    global _flusher
    _worker = getattr(sender, "hostname", None) or f"{socket.gethostname()}.{os.getpid()}"
    if _flusher is None:
        _flusher = threading.Thread(target=run, name="metrics-tally", daemon=True)
        _flusher.start()
        atexit.register(flush)  # a worker stopped without Celery's shutdown signal


def stop(**kwargs):
    """The worker stops (Celery's worker_shutdown): its last counts written, its heartbeat gone."""
    _stopping.set()
    flush()
    if _worker:
        Heartbeat.objects.filter(worker=_worker).delete()
