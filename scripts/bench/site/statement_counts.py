"""Counts what a process of the site asks of its database, for `make bench`; not a script.

The bench's settings module `<settings>_counted` imports this: every database connection
then counts its statements, its transactions (an autocommit statement, or an atomic block
that ran any, committed or rolled back), those that wrote, and the rows written (INSERT,
UPDATE, DELETE), by role: STATEMENT_COUNTS_ROLE, or "handoff" in the hand-off thread of a
"request" process (a sweeper's hand-off counts as the sweeper's).
At exit the process writes them as JSON to STATEMENT_COUNTS_DIR/<pid>.json.
"""

import atexit
import json
import os
import threading
from collections import Counter, defaultdict
from pathlib import Path

from django.db.backends.signals import connection_created

WRITES = ("INSERT", "UPDATE", "DELETE")
HANDOFF_THREAD = "mail-handoff"  # delivery/handoff.py
_counts = defaultdict(Counter)
_lock = threading.Lock()


def _add(**counted):
    role = os.environ["STATEMENT_COUNTS_ROLE"]
    if role == "request" and threading.current_thread().name == HANDOFF_THREAD:
        role = "handoff"
    with _lock:
        _counts[role].update(counted)


def _count(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    connection = context["connection"]
    wrote = sql.lstrip().split(None, 1)[0].upper() in WRITES
    _add(statements=1, rows_written=max(context["cursor"].rowcount, 0) if wrote else 0)
    if connection.get_autocommit():
        _add(transactions=1, write_transactions=int(wrote))
    else:  # inside an atomic block: counted when it ends
        connection.counted_wrote = getattr(connection, "counted_wrote", False) or wrote
    return result


def _ending(connection, end):
    """commit or rollback, counting the transaction if it ran a statement."""

    def ended():
        if hasattr(connection, "counted_wrote"):
            _add(transactions=1, write_transactions=int(connection.counted_wrote))
            del connection.counted_wrote
        return end()

    return ended


def _on_connect(sender, connection, **kwargs):
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)
        connection.commit = _ending(connection, connection.commit)
        connection.rollback = _ending(connection, connection.rollback)


@atexit.register
def _write():
    if _counts:
        path = Path(os.environ["STATEMENT_COUNTS_DIR"]) / f"{os.getpid()}.json"
        path.write_text(json.dumps(_counts))


connection_created.connect(_on_connect)
