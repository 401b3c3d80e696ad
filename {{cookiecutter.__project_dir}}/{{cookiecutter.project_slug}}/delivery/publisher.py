"""Hands committed mails to the broker from a thread of its own, so a request
never waits for RabbitMQ: send_mail() costs one INSERT.

A mail this process could not hand off (it died first) is picked up by the
sweeper a minute later (status.claim_due).
"""

import atexit
import logging
import queue
import threading

from django.db import close_old_connections, transaction

from .handoff import hand_off_due

logger = logging.getLogger(__name__)

# Mails that pile up while the broker is slow go out together, in fewer tasks.
BATCH_SIZE = 100

_pending = queue.Queue()
_start = threading.Lock()
_thread = None


def hand_off_after_commit(sender, emails, **kwargs):
    """post_office queued these mails: hand them out once they are committed."""
    transaction.on_commit(lambda: _submit(emails))


def _submit(emails):
    global _thread
    with _start:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_hand_off_forever, name="mail-handoff", daemon=True)
            _thread.start()
    _pending.put(emails)


def _hand_off_forever():
    while True:
        batches = [_pending.get()]
        while len(batches) < BATCH_SIZE and not _pending.empty():
            batches.append(_pending.get_nowait())
        close_old_connections()
        try:
            hand_off_due([email for batch in batches for email in batch])
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
