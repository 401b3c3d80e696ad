"""Slots for the connections the site holds to a mail server: MAIL_MAX_CONNECTIONS for
every worker process together, or fewer for a while after the server answered "too many
connections". On PostgreSQL a slot is an advisory lock held by a database connection of
this process; on SQLite a lock on a file. Either is freed when the process dies.
https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS"""

import fcntl
import threading
import time
import zlib

from django.conf import settings
from django.db import connections

from .models import Pace

# After "too many connections", the site holds fewer for this long (seconds).
FEWER_FOR = 600.0
# How long a process trusts the cap it read.
CAP_READ_FOR = 1.0

_lock = threading.RLock()
_held = set()  # (alias, slot) this process holds
_files = {}  # (alias, slot): the open file whose lock is the slot (SQLite)
_database = None  # this process's own connection for advisory locks (PostgreSQL)
_caps = {}  # alias: (cap, when read)


def on_postgresql():
    return connections["default"].vendor == "postgresql"


def cap(alias):
    """The connections the site may hold to the alias's server now."""
    with _lock:
        known, read_at = _caps.get(alias, (None, 0.0))
        if known is not None and time.monotonic() - read_at < CAP_READ_FOR:
            return known
        now = time.time()
        fewer = (
            Pace.objects.filter(mailer=alias, connections_until__gt=now)
            .values_list("connections", flat=True)
            .first()
        )
        known = min(fewer or settings.MAIL_MAX_CONNECTIONS, settings.MAIL_MAX_CONNECTIONS)
        _caps[alias] = (known, time.monotonic())
        return known


def take(alias):
    """A free slot for a new connection, now this process's; None if all are in use."""
    with _lock:
        for slot in range(cap(alias)):
            if (alias, slot) not in _held and _try(alias, slot):
                _held.add((alias, slot))
                return slot
    return None


def allowed(alias, slot):
    return slot < cap(alias)


def give_back(alias, slot):
    with _lock:
        if (alias, slot) in _held:
            _held.discard((alias, slot))
            _release(alias, slot)


def too_many(alias):
    """The server refused a connection: the site holds no more than it had open then (but
    the refused one) for FEWER_FOR seconds."""
    fewer = max(1, min(cap(alias), held_site_wide(alias)) - 1)
    Pace.objects.get_or_create(mailer=alias)
    Pace.objects.filter(mailer=alias).update(
        connections=fewer, connections_until=time.time() + FEWER_FOR
    )
    with _lock:
        _caps.pop(alias, None)
    return fewer


def held_site_wide(alias):
    """How many slots every process of the site holds now."""
    if on_postgresql():
        with _lock:
            rows = _query(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = %s AND objsubid = 2",
                [_key(alias)],
            )
        return rows[0][0]
    return sum(1 for slot in range(settings.MAIL_MAX_CONNECTIONS) if _locked_elsewhere(alias, slot))


def _key(alias):
    """The advisory lock's first key: this site's queue and the alias."""
    return zlib.crc32(f"{settings.MAIL_QUEUE}:{alias}".encode()) & 0x7FFFFFFF


def _try(alias, slot):
    if on_postgresql():
        # One query per slot: a query that locks several (LIMIT) may lock rows it never returns.
        return _query("SELECT pg_try_advisory_lock(%s, %s)", [_key(alias), slot])[0][0]
    handle = _file(alias, slot).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    _files[(alias, slot)] = handle
    return True


def _release(alias, slot):
    if on_postgresql():
        _query("SELECT pg_advisory_unlock(%s, %s)", [_key(alias), slot])
    elif (handle := _files.pop((alias, slot), None)) is not None:
        handle.close()  # closing the file drops its lock


def _locked_elsewhere(alias, slot):
    if (alias, slot) in _held:
        return True
    with _file(alias, slot).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _file(alias, slot):
    folder = settings.BASE_DIR / ".mail-connections"
    folder.mkdir(exist_ok=True)
    return folder / f"{settings.MAIL_QUEUE}-{alias}-{slot}.lock"


def _query(sql, params):
    """Run SQL on this process's own connection, which holds its advisory locks."""
    global _database
    if _database is None:
        _database = connections.create_connection("default")
        _database.inc_thread_sharing()  # used by every thread, one at a time (_lock)
    try:
        with _database.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    except Exception:
        # A lost connection lost its locks too: this process holds none now.
        _database.close()
        _database = None
        _held.clear()
        raise
