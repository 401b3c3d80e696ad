"""The state machine as data (delivery/state.py MOVES): move() makes only the moves of the
table, only for mails in the states a move allows, and a failed attempt's Log row keeps its
outcome for the admin."""

import importlib

import pytest
from django.apps import apps
from django.conf import settings
from post_office import mail
from post_office.models import STATUS, Log

from {{ cookiecutter.project_slug }}.delivery import admin, state
from {{ cookiecutter.project_slug }}.delivery.models import (
    Delivery,
    Fault,
    LogOutcome,
    State,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting():
    """A mail written and waiting for a worker (nothing is handed to the broker)."""
    email = mail.send("ada@example.com", subject="Hi", message="Body")
    state.record([email])
    return email


def state_of(email):
    return Delivery.objects.get(email_id=email.pk).state


def test_every_state_a_mail_can_reach_is_a_move_of_the_table():
    reached = {target for rule in state.MOVES.values() for target in rule.targets}
    first = {State.QUEUED, State.SCHEDULED}  # record() writes these
    assert reached | first == set(State)


def test_a_move_to_a_state_its_row_does_not_allow_is_refused(waiting):
    with pytest.raises(ValueError, match="withheld"):
        state.move("withheld", [waiting.pk], State.SENT)

    assert state_of(waiting) == State.QUEUED


@pytest.mark.parametrize("trigger, to", [("withheld", State.FAILED), ("held", State.HELD)])
def test_a_move_leaves_a_mail_that_is_not_in_its_states_alone(waiting, trigger, to):
    moved = state.move(trigger, [waiting.pk], to)

    assert moved == 0 and state_of(waiting) == State.QUEUED


def test_a_move_writes_the_delivery_post_office_and_the_log_together(waiting):
    state.take(Delivery.objects.get(email_id=waiting.pk).email)

    again = state.attempt_failed(waiting.pk, "451 busy", "SMTPDataError", Fault.PASSING, False)

    waiting.refresh_from_db()
    delivery = Delivery.objects.get(email_id=waiting.pk)
    assert again is False and (delivery.state, delivery.failed_attempts) == (State.RETRYING, 1)
    assert (waiting.status, waiting.number_of_retries) == (STATUS.requeued, 1)
    [log] = Log.objects.filter(email=waiting)
    assert (log.outcome.outcome, admin.outcome(log)) == ("retrying", "retrying")


def test_a_refused_mails_log_says_failed(waiting):
    state.take(Delivery.objects.get(email_id=waiting.pk).email)

    state.attempt_failed(waiting.pk, "550 no such user", "SMTPDataError", Fault.REFUSED, True)

    [log] = Log.objects.filter(email=waiting)
    assert admin.outcome(log) == "failed" and state_of(waiting) == State.FAILED


def test_the_outcome_of_older_log_rows_is_read_from_their_words(waiting):
    words = {
        "retrying, next attempt at 12:00:00: 451 busy": "retrying",
        "setup, next attempt at 12:00:00: 535 bad credentials": "retrying",
        "interrupted while sending; the server may have accepted it": "retrying",
        "refused: 550 no such user": "failed",
        "gave up after 3 days, 0:00:00: 451 busy": "failed",
    }
    logs = {Log.objects.create(email=waiting, status=STATUS.failed, message=m).pk: m for m in words}
    sent = Log.objects.create(email=waiting, status=STATUS.sent, message="")
    migration = importlib.import_module(
        f"{settings.SITE_PACKAGE}.delivery.migrations.0003_log_outcome"
    )

    migration.outcome_from_message(apps, None)

    stored = dict(LogOutcome.objects.values_list("log_id", "outcome"))
    assert {logs[pk]: outcome for pk, outcome in stored.items()} == words
    assert admin.outcome(sent) == "sent"
