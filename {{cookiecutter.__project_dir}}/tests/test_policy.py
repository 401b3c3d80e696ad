"""When a failed mail is tried again and when it is given up (delivery/policy.py), as a table:
pure functions of what happened. Which fault an answer is: tests/test_fault_taxonomy.py."""

from datetime import UTC, datetime, timedelta

import pytest

from {{ cookiecutter.project_slug }}.delivery import policy
from {{ cookiecutter.project_slug }}.delivery.models import (
    Fault,
    State,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RETRY = timedelta(seconds=60)
GIVE_UP = timedelta(hours=72)
YOUNG, OLD = NOW - timedelta(hours=1), NOW - timedelta(hours=73)

# (fault, the mail's time, Celery has retries left, state after, due after, the Log's first word)
AFTER_FAILURE = [
    (Fault.REFUSED, YOUNG, True, State.FAILED, None, "refused"),
    (Fault.REFUSED, OLD, False, State.FAILED, None, "refused"),
    (Fault.PASSING, YOUNG, True, State.RETRYING, NOW + RETRY + policy.RETRY_GRACE, "retrying"),
    (Fault.PASSING, YOUNG, False, State.RETRYING, NOW + RETRY, "retrying"),
    (Fault.PASSING, OLD, True, State.FAILED, None, "gave"),
    (Fault.PASSING, NOW - GIVE_UP, False, State.RETRYING, NOW + RETRY, "retrying"),  # not past it
    (Fault.SETUP, YOUNG, False, State.RETRYING, NOW + RETRY, "setup"),
    (Fault.SETUP, OLD, False, State.RETRYING, NOW + RETRY, "setup"),  # until the setup is fixed
    (Fault.SETUP, OLD, True, State.RETRYING, NOW + RETRY + policy.RETRY_GRACE, "setup"),
]


@pytest.mark.parametrize("fault, since, retries_left, state, due, word", AFTER_FAILURE)
def test_what_follows_a_failed_attempt(fault, since, retries_left, state, due, word):
    then = policy.after_failure(fault, "451 busy", NOW, since, RETRY, GIVE_UP, retries_left)

    assert (then.state, then.due, then.note.split()[0].rstrip(",:")) == (state, due, word)
    assert then.note.endswith(": 451 busy")


@pytest.mark.parametrize(
    "created, scheduled, since",
    [
        (YOUNG, None, YOUNG),
        (YOUNG, NOW + timedelta(days=3), NOW + timedelta(days=3)),  # scheduled days ahead
        (YOUNG, OLD, YOUNG),  # scheduled before it was written: its writing counts
    ],
)
def test_a_mails_give_up_is_counted_from_its_time(created, scheduled, since):
    assert policy.mail_time(created, scheduled) == since
