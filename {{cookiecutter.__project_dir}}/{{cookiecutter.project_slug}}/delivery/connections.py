"""The worker's connections to the mail server or the email service: kept open across
tasks in a pool its threads share, so a busy worker connects (and, over SMTP, greets,
starts TLS and logs in) once, not once a mail; at most MAIL_MAX_CONNECTIONS open at once
for every worker of the site together (slots.py). A connection left unused longer than
MAIL_CONNECTION_IDLE is closed: servers drop idle connections."""

import contextlib
import logging
import threading
import time

from django.conf import settings
from django.core.mail import mailers

from . import slots

# A mail that waits this long for a connection goes back in line.
MAX_WAIT = 60.0

logger = logging.getLogger(__name__)


class NoConnection(Exception):
    """Every connection the site may open is in use."""


class _Pool:
    def __init__(self):
        self.changed = threading.Condition()
        self.idle = {}  # alias: [(mailer, its settings, its slot, when it was given back)]
        self.slot_of = {}  # id(mailer): its slot


_pool = _Pool()
_reaper = None


def _close_idle_forever():
    """Close idle connections even while this process sends nothing: they hold slots that
    other processes may be waiting for."""
    while True:
        time.sleep(0.5)
        with _pool.changed:
            for alias in list(_pool.idle):
                _close_idle(alias, settings.MAILERS.get(alias))


@contextlib.contextmanager
def borrowed(alias):
    """A connection (a mailer) for a MAILERS alias, given back to the pool after use, or
    closed if the use raised: a broken connection is not used again. (One the server
    dropped while idle fails its send as a passing fault, retried on a new connection.)"""
    mailer = _take(alias)
    try:
        yield mailer
    except BaseException:
        _close(mailer)
        raise
    try:
        _give_back(alias, mailer)
    except Exception:  # the use went well: the mail is not failed for the pool's trouble
        logger.exception("A connection to %s could not go back to the pool: closed", alias)
        _close(mailer)


def _take(alias):
    global _reaper
    if _reaper is None:
        _reaper = threading.Thread(target=_close_idle_forever, name="mail-idle", daemon=True)
        _reaper.start()
    config = settings.MAILERS.get(alias)
    deadline = time.monotonic() + MAX_WAIT
    with _pool.changed:
        while True:
            _close_idle(alias, config)
            if _pool.idle.get(alias):
                mailer, _, _, _ = _pool.idle[alias].pop()
                return mailer
            slot = slots.take(alias)
            if slot is not None:
                break
            if time.monotonic() > deadline:
                raise NoConnection(f"waited {MAX_WAIT:g} s for one of the site's connections")
            # Another thread gives one back (notify), or another process frees a slot.
            _pool.changed.wait(0.5)
    try:
        mailer = mailers[alias]
    except BaseException:
        slots.give_back(alias, slot)
        raise
    _pool.slot_of[id(mailer)] = (alias, slot)
    return mailer


def _give_back(alias, mailer):
    with _pool.changed:
        _, slot = _pool.slot_of[id(mailer)]
        if not slots.allowed(alias, slot):  # the site holds fewer connections now
            _close(mailer)
            return
        config = settings.MAILERS.get(alias)
        _pool.idle.setdefault(alias, []).append((mailer, config, slot, time.monotonic()))
        _pool.changed.notify()


def _close_idle(alias, config):
    """Close this alias's connections idle too long, or made from other settings (tests
    change them)."""
    now = time.monotonic()
    keep = []
    for mailer, made_from, slot, given_back in _pool.idle.get(alias, []):
        idle = now - given_back > settings.MAIL_CONNECTION_IDLE.total_seconds()
        if idle or made_from != config:
            _close(mailer)
        else:
            keep.append((mailer, made_from, slot, given_back))
    _pool.idle[alias] = keep


def _close(mailer):
    """Close a mailer's connection and free its slot."""
    with contextlib.suppress(Exception):  # its connection may be broken already
        mailer.close()
    with _pool.changed:
        if (held := _pool.slot_of.pop(id(mailer), None)) is not None:
            # A database that cannot free the slot has lost the connection holding it.
            with contextlib.suppress(Exception):
                slots.give_back(*held)
        _pool.changed.notify()


def close_idle(alias):
    """Close this process's idle connections for an alias now."""
    with _pool.changed:
        for mailer, *_ in _pool.idle.pop(alias, []):
            _close(mailer)


def open_now(alias):
    """How many connections this process has open for an alias (idle or in use)."""
    with _pool.changed:
        return sum(1 for held_alias, _ in _pool.slot_of.values() if held_alias == alias)
