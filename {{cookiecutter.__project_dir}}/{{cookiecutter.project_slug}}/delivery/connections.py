"""The worker's connections to the mail server or the email service, kept open across
tasks: one per worker thread and mailer, so a busy worker connects (and, over SMTP, greets,
starts TLS and logs in) once, not once a mail. A connection left unused longer than
MAIL_CONNECTION_IDLE is closed before its next use: servers drop idle connections."""

import contextlib
import threading
import time

from django.conf import settings
from django.core.mail import mailers


class _ThreadsMailers(threading.local):
    def __init__(self):
        # alias: (mailer, the settings it was made from, when it was last taken)
        self.open = {}


_this_thread = _ThreadsMailers()


def mailer(alias):
    """This thread's mailer for a MAILERS alias. (One the server dropped fails its send as
    a passing fault, retried like any other, on a new connection.)"""
    now = time.monotonic()
    config = settings.MAILERS.get(alias)
    kept, made_from, taken_at = _this_thread.open.get(alias, (None, None, 0.0))
    idle = now - taken_at > settings.MAIL_CONNECTION_IDLE.total_seconds()
    if kept is not None and (idle or made_from != config):  # tests change the settings
        discard(kept)
        kept = None
    if kept is None:
        kept = mailers[alias]
    _this_thread.open[alias] = (kept, config, now)
    return kept


def discard(used):
    """Close a mailer of this thread and forget it: after an error it is not used again."""
    for alias, (kept, _, _) in list(_this_thread.open.items()):
        if kept is used:
            del _this_thread.open[alias]
    with contextlib.suppress(Exception):  # its connection may be broken already
        used.close()
