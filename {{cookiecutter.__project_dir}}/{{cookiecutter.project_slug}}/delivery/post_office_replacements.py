"""post_office's functions that would send mail in the calling process, and what this site
puts in their place: every mail goes to a Celery worker instead, which marks it sent only
once the mail server accepted it.

install() puts them in place from DeliveryConfig.ready(). That runs before Celery imports
any tasks module, so post_office.tasks, which imports send_queued_mail_until_done by
name, gets the replacement too. tests/test_post_office_replacements.py fails when one of
post_office's functions changes its signature.
"""

from post_office import mail
from post_office.lockfile import default_lockfile
from post_office.models import STATUS, Email

from . import handoff, state, sweeper


def dispatch(email, log_level=None, disconnect_after_delivery=True, commit=True, connection=None):
    """Replaces Email.dispatch(), which sends in the calling request (for priority "now"
    and the admin's Resend): here the mail goes to a worker like any other."""
    state.send_again(email.pk)
    handoff.after_commit([email])
    email.status = STATUS.queued
    return email.status


def send_queued(processes=1, log_level=None):
    """Replaces mail.send_queued(), which sends from the calling process and marks a mail
    sent once Email.dispatch() returns, which here only hands it to a worker.
    Hands the due mail to the workers; returns post_office's (sent, failed, requeued), all 0:
    nothing is sent here."""
    sweeper.sweep()
    return 0, 0, 0


def send_queued_mail_until_done(lockfile=default_lockfile, processes=1, log_level=None):
    """Replaces mail.send_queued_mail_until_done(), which sends batch after batch under a
    file lock: here the sweeper hands the due mail to the workers (sweepers claim mails in
    the database, so they need no lock)."""
    return sweeper.sweep()


# What install() replaces: (post_office's module or class, the name, the site's function).
REPLACEMENTS = (
    (Email, "dispatch", dispatch),
    (mail, "send_queued", send_queued),
    (mail, "send_queued_mail_until_done", send_queued_mail_until_done),
)
# post_office's own functions, by name, as they were before install().
REPLACED = {}


def install():
    for owner, name, replacement in REPLACEMENTS:
        REPLACED.setdefault(name, getattr(owner, name))
        setattr(owner, name, replacement)
