"""When a mail is tried again and when it is given up: pure functions of what happened, so
they read (and are tested) as tables. Which fault an answer is: answers.py."""

from datetime import datetime, timedelta
from typing import NamedTuple

from django.utils import timezone

from .models import Fault, State

# A mail its own process did not hand off within this time is handed out by the sweeper.
HANDOFF_GRACE = timedelta(minutes=1)
# A sweeper that claimed mails has this long to hand them out before another may.
SWEEP_LEASE = timedelta(minutes=2)
# While Celery retries a mail itself, the sweeper waits this much longer than the retry.
RETRY_GRACE = timedelta(minutes=1)


class AfterFailure(NamedTuple):
    """What follows a failed attempt: the mail's state, when it is due, the Log's message."""

    state: str
    due: datetime | None
    note: str


def after_failure(fault, answer, now, since, retry_interval, give_up_after, celery_retries_left):
    """A refusal fails the mail. A passing failure is retried, by Celery while it has retries
    left (the sweeper waits RETRY_GRACE longer), then by the sweeper every `retry_interval`,
    until `give_up_after` has passed `since` (the mail's time). A fault of the site's setup
    (credentials, the sender the server refuses) is retried until the setup is fixed."""
    if fault == Fault.REFUSED:
        return AfterFailure(State.FAILED, None, f"refused: {answer}")
    if fault == Fault.PASSING and now - since > give_up_after:
        return AfterFailure(State.FAILED, None, f"gave up after {give_up_after}: {answer}")
    retry_at = now + retry_interval
    due = retry_at + RETRY_GRACE if celery_retries_left else retry_at
    kind = "setup" if fault == Fault.SETUP else "retrying"
    note = f"{kind}, next attempt at {timezone.localtime(retry_at):%H:%M:%S}: {answer}"
    return AfterFailure(State.RETRYING, due, note)


def mail_time(created, scheduled_time):
    """The time a mail's give-up is counted from: a mail scheduled days ahead is not given up
    at its first passing failure."""
    return max(created, scheduled_time or created)


def is_ahead(moment, now):
    return moment is not None and moment > now
