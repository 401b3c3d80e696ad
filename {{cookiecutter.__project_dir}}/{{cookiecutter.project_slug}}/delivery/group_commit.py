"""The worker's threads commit their mails' moves together (a group commit).

A thread hands its write (a mail taken, a mail sent) to run() and waits until it is committed,
as it would for its own transaction. The first thread to arrive waits WINDOW for the others'
writes, then runs them all in one transaction on its own connection: one commit, one wait for
the disk, for a few mails. Nothing is written earlier than before ("sent" only after the
server accepted) and a thread goes on only once its write is durable, so a killed worker
loses no more than the mails its threads had in flight. If the shared transaction fails,
each write runs again alone, so an error is only its own mail's.

The writes run in the order of their mails' ids, the order in which every writer of several
mails' rows locks them (state.guarded): two such transactions never wait for each other in a
circle (a deadlock).
"""

import threading
import time

from django.db import transaction

WINDOW = 0.004  # seconds the first thread waits for others' writes


class _Write:
    def __init__(self, mail_id, write, args, kwargs):
        self.mail_id = mail_id
        self.call = lambda: write(*args, **kwargs)
        self.committed = threading.Event()
        self.result = None
        self.error = None


_lock = threading.Lock()
_waiting = []  # writes handed in and not yet taken by a committing thread


def run(mail_id, write, *args, **kwargs):
    """write(*args, **kwargs), which writes the rows of the mail `mail_id`, in a transaction
    shared with other threads' writes; its result once committed, or its error."""
    mine = _Write(mail_id, write, args, kwargs)
    with _lock:
        _waiting.append(mine)
        first = len(_waiting) == 1
    if first:
        _gather()
        with _lock:
            batch = sorted(_waiting, key=lambda write: write.mail_id)
            _waiting.clear()
        _commit(batch)
    mine.committed.wait()
    if mine.error is not None:
        raise mine.error
    return mine.result


def _gather():
    """Let the writes of the other threads arrive."""
    time.sleep(WINDOW)


def _commit(batch):
    try:
        with transaction.atomic():
            results = [write.call() for write in batch]
    except Exception as error:
        if len(batch) == 1:
            batch[0].error = error
        else:
            for write in batch:
                _commit([write])
    except BaseException:  # this thread is stopped: the others must not take it for a commit
        for write in batch:
            write.error = RuntimeError("the thread committing this write was stopped")
        raise
    else:
        for write, result in zip(batch, results, strict=True):
            write.result = result
    finally:
        for write in batch:
            write.committed.set()
