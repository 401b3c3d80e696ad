"""Sending within a provider's limits: its answers read, the lanes, the pace every worker
shares, the daily quota and the settings."""

import re
import smtplib
import time
from datetime import timedelta

import pytest
import requests
from anymail.exceptions import AnymailAPIError
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.utils import timezone
from djcelery_email.tasks import send_emails
from post_office import mail as post_office
from post_office.models import STATUS, Email

from {{ cookiecutter.project_slug }}.delivery import (
    answers,
    connections,
    pace,
    slots,
    sweeper,
)
from {{ cookiecutter.project_slug }}.delivery.lanes import lane_of
from {{ cookiecutter.project_slug }}.delivery.models import (
    Delivery,
    Fault,
    Lane,
    Pace,
    State,
    Usage,
)

from config import celery_app, limits

SES_RATE = b"Throttling failure: Maximum sending rate exceeded."
SES_QUOTA = b"Throttling failure: Daily message quota exceeded."


@pytest.fixture(autouse=True)
def fresh_pace(monkeypatch):
    """Each test starts with no slots leased in this process."""
    monkeypatch.setattr(pace, "_locals", {})


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (454, SES_RATE, "rate"),
        (454, SES_QUOTA, "quota"),
        (421, b"4.7.0 mx.example.com Error: too many connections from 192.0.2.1", "connections"),
        (450, b"4.7.1 Error: too much mail from 192.0.2.1", "rate"),
        (421, b"4.7.0 Try again later, closing connection.", "rate"),
        (450, b"4.2.1 The user you are trying to contact is receiving mail at a rate", "rate"),
        (550, b"5.4.5 Daily user sending quota exceeded.", "quota"),
        (421, b"4.7.500 Server busy, please try again later", "rate"),
        (432, b"4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", "connections"),
        (432, b"4.3.2 Concurrent connections limit exceeded", "connections"),
        (554, b"5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", "quota"),
    ],
)
def test_throttling_answers_of_smtp_servers_are_throttling(code, text, kind):
    verdict = answers.verdict(smtplib.SMTPDataError(code, text))

    assert verdict.fault == Fault.THROTTLED
    assert verdict.kind == kind


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (smtplib.SMTPDataError(451, b"4.3.0 Try again later"), Fault.PASSING),
        (smtplib.SMTPDataError(550, b"5.1.1 No such user here"), Fault.REFUSED),
        (
            smtplib.SMTPDataError(550, b"5.7.1 Message refused: rate of spam too high"),
            Fault.REFUSED,
        ),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"), Fault.SETUP),
        (ConnectionRefusedError(), Fault.PASSING),
    ],
)
def test_other_answers_keep_their_fault(error, fault):
    assert answers.verdict(error).fault == fault


def api_error(status, headers=None, code=None, message="error"):
    """An AnymailAPIError as a requests-based backend (status) or Amazon SES (code) raises it."""
    if code is not None:
        response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}
        return AnymailAPIError(message, response=response)
    response = requests.Response()
    response.status_code, response.reason = status, "Too Many Requests"
    response.headers.update(headers or {})
    return AnymailAPIError(message, status_code=status, response=response)


def test_an_api_429_is_throttling_and_its_retry_after_a_pause():
    verdict = answers.verdict(api_error(429, {"Retry-After": "7"}))

    assert (verdict.fault, verdict.kind, verdict.pause) == (Fault.THROTTLED, "rate", 7.0)


def test_amazon_ses_throttling_is_throttling_and_its_quota_a_long_pause():
    rate = answers.verdict(api_error(None, code="Throttling", message=SES_RATE.decode()))
    quota = answers.verdict(api_error(None, code="Throttling", message=SES_QUOTA.decode()))

    assert (rate.fault, rate.kind) == (Fault.THROTTLED, "rate")
    assert (quota.fault, quota.kind) == (Fault.THROTTLED, "quota")
    assert quota.pause >= 600


def test_an_api_key_refused_is_still_a_fault_of_the_setup():
    assert answers.verdict(api_error(401)).fault == Fault.SETUP


@pytest.mark.parametrize(
    ("priority", "headers", "lane"),
    [
        ("low", None, Lane.BULK),
        ("medium", {"Precedence": "bulk"}, Lane.BULK),
        ("high", {"precedence": "List"}, Lane.BULK),
        ("medium", {"Precedence": "first-class"}, Lane.TRANSACTIONAL),
        ("now", None, Lane.TRANSACTIONAL),
    ],
)
def test_bulk_mail_is_low_priority_or_says_so_in_its_precedence(priority, headers, lane):
    email = Email(priority=["low", "medium", "high", "now"].index(priority), headers=headers)

    assert lane_of(email.priority, email.headers) == lane


@pytest.mark.parametrize(
    ("value", "rate"), [("14/s", 14.0), ("600/m", 10.0), ("50000/h", 50000 / 3600), ("", None)]
)
def test_rate_limits_read_per_second_minute_or_hour(value, rate):
    assert limits.rate_limit(value) == (pytest.approx(rate) if rate else None)


@pytest.mark.parametrize("value", ["14", "fast", "0/s", "14/d", "-3/s"])
def test_a_bad_rate_limit_is_refused_naming_the_variable(value):
    with pytest.raises(ImproperlyConfigured, match=f"MAIL_RATE_LIMIT={value!r}"):
        limits.rate_limit(value)


def test_rate_limits_per_mailer_read_alias_and_rate():
    mailers = {"news", "alerts"}

    assert limits.rate_limits("news:10/s, alerts:600/m", mailers) == {"news": 10.0, "alerts": 10.0}
    assert limits.rate_limits("", mailers) == {}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("newz:10/s", "'newz:10/s' is not alias:rate with an alias added to MAILERS (alerts,"),
        ("news", "'news' is not alias:rate"),
        ("news:fast", "MAIL_RATE_LIMITS news='fast' is not a rate"),
    ],
)
def test_a_bad_rate_limit_per_mailer_is_refused_naming_it(value, complaint):
    with pytest.raises(ImproperlyConfigured, match=re.escape(complaint)):
        limits.rate_limits(value, {"news", "alerts"})


def test_bad_counts_and_shares_are_refused_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="MAIL_MAX_CONNECTIONS='0'"):
        limits.count("0", "MAIL_MAX_CONNECTIONS", 20)
    with pytest.raises(ImproperlyConfigured, match="MAIL_DAILY_QUOTA='lots'"):
        limits.count("lots", "MAIL_DAILY_QUOTA", None)
    with pytest.raises(ImproperlyConfigured, match="MAIL_DAILY_QUOTA_RESERVE='150'"):
        limits.percent("150", "MAIL_DAILY_QUOTA_RESERVE", 0.1)
    assert limits.percent("25%", "MAIL_DAILY_QUOTA_RESERVE", 0.1) == 0.25


@pytest.mark.django_db
def test_slots_are_spaced_by_the_rate_limit_and_a_margin(settings):
    settings.MAIL_RATE_LIMIT = 10.0
    started = time.time()
    for _ in range(6):
        assert pace.acquire("transport", Lane.TRANSACTIONAL) is None

    assert time.time() - started >= 5 * (1 + pace.MARGIN) / 10 - 0.01


def leased_spacing(late, jitter=0.0, jitter_at=0.0):
    """The spacing of the slots a process leases at 10 mails a second, its last second's mails
    having reached the server `late` seconds after their slots; and the row's jitter after."""
    now = time.time()
    Pace.objects.create(
        mailer="transport", rate=10.0, next_free=now, jitter=jitter, jitter_at=jitter_at
    )
    local = pace._Local(waiting=5)
    local.late.extend((now - 0.5 + i * 0.1, seconds) for i, seconds in enumerate(late))
    first = pace._lease("transport", Lane.TRANSACTIONAL, local, now)
    return local.slots[0] - first, Pace.objects.get().jitter


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("late", "margin"),
    [
        ([0.010, 0.015, 0.012], pace.MARGIN),  # within the margin: the margin
        ([0.010, 0.070, 0.030], 0.06),  # 60 ms apart: 6 % further apart
        ([0.010, 0.600], pace.MAX_MARGIN),  # a stall: no more than MAX_MARGIN
    ],
    ids=["steady", "jittery", "stalled"],
)
def test_slots_lie_as_far_apart_beyond_the_rate_as_mails_reached_the_server_apart(
    settings, late, margin
):
    settings.MAIL_RATE_LIMIT = 10.0

    spacing, _ = leased_spacing(late)

    assert spacing == pytest.approx((1 + margin) / 10)


@pytest.mark.django_db
def test_after_an_idle_second_the_first_slots_lie_as_far_apart_as_the_margin_goes(settings):
    settings.MAIL_RATE_LIMIT = 10.0
    Pace.objects.create(mailer="transport", rate=10.0, next_free=time.time() - 1.5)
    local = pace._Local(waiting=5)

    first = pace._lease("transport", Lane.TRANSACTIONAL, local, time.time())

    assert local.slots[0] - first == pytest.approx((1 + pace.MAX_MARGIN) / 10)


@pytest.mark.django_db
def test_the_jitter_a_row_keeps_eases_by_the_second(settings):
    settings.MAIL_RATE_LIMIT = 10.0
    four_seconds_ago = time.time() - 4

    spacing, jitter = leased_spacing([0.01, 0.02], jitter=0.08, jitter_at=four_seconds_ago)

    assert jitter == pytest.approx(0.08 - 4 * pace.JITTER_EASES, abs=0.001)
    assert spacing == pytest.approx((1 + jitter) / 10, rel=0.001)


@pytest.fixture
def stalls(monkeypatch):
    """stalls(seconds, ...): the next sleeps of this process each last that much longer, as
    when the machine does not give the process a core in time."""
    extra, sleep = [], time.sleep

    def stalled(seconds):
        sleep(seconds + (extra.pop(0) if extra else 0))

    monkeypatch.setattr(pace.time, "sleep", stalled)
    return lambda *seconds: extra.extend(seconds)


@pytest.mark.django_db
@pytest.mark.parametrize("stalled", [[0.3], [0.3, 0.3]], ids=["once", "twice"])
def test_a_thread_woken_too_late_for_its_slot_takes_a_later_one_once(settings, stalls, stalled):
    settings.MAIL_RATE_LIMIT = 10.0
    stalls(*stalled)
    started = time.time()

    assert pace.acquire("transport", Lane.TRANSACTIONAL) is None

    # Its first slot came before the first stall; the second, leased after it, is used
    # whatever the second stall: a slot taken after two stalls would lie past both.
    assert started + 0.3 <= pace._slot.at < started + 0.6


@pytest.mark.django_db
def test_a_mail_accepted_counts_how_long_after_its_slot_the_server_answered(settings):
    settings.MAIL_RATE_LIMIT = 10.0
    assert pace.acquire("transport", Lane.TRANSACTIONAL) is None
    time.sleep(0.05)  # the send
    pace.accepted("transport")

    [(_, late)] = pace._local("transport").late
    assert late >= 0.05


@pytest.mark.django_db
def test_a_mailer_added_to_mailers_keeps_its_own_rate_limit(settings):
    settings.MAIL_RATE_LIMIT, settings.MAIL_RATE_LIMITS = None, {"other": 10.0}
    started = time.time()
    for _ in range(6):
        assert pace.acquire("other", Lane.TRANSACTIONAL) is None
    assert pace.acquire("transport", Lane.TRANSACTIONAL) is None

    assert time.time() - started >= 5 * (1 + pace.MARGIN) / 10 - 0.01
    rates = dict(Pace.objects.values_list("mailer", "rate"))
    assert rates == {"other": 10.0, "transport": None}


@pytest.mark.django_db
def test_bulk_mail_leases_only_a_short_horizon_ahead_transactional_mail_further(settings):
    settings.MAIL_RATE_LIMIT = 10.0
    now = time.time()
    Pace.objects.create(mailer="transport", rate=10.0, next_free=now + 2)

    held = pace._lease("transport", Lane.BULK, pace._Local(), now)
    transactional = pace._Local()

    assert held is not None and held.until == pytest.approx(now + 2 - pace.BULK_HORIZON)
    first = pace._lease("transport", Lane.TRANSACTIONAL, transactional, now)
    assert first == pytest.approx(now + 2)


@pytest.mark.django_db
def test_told_no_limit_the_first_throttling_answer_learns_the_whole_sites_rate(settings):
    settings.MAIL_RATE_LIMIT = None
    for _ in range(12):  # this process's mails the provider accepted in the last second
        pace.accepted("transport")
    other = pace._Local()  # another process, its 8 mails not reported yet
    other.recent.extend([time.time() - 0.5] * 8)

    pace.throttled("transport", answers.Verdict(Fault.THROTTLED, "rate"))
    now = time.time()
    held = pace._lease("transport", Lane.TRANSACTIONAL, other, now)
    pace._lease("transport", Lane.TRANSACTIONAL, other, now)  # counted once

    assert held is not None and held.why == pace.LEARNING
    assert held.until == pytest.approx(now + 1, abs=0.5)
    rate = Pace.objects.get().rate
    assert rate == pytest.approx(pace.MIN_RATE + pace.DECREASE * 20)


@pytest.mark.django_db
def test_a_throttling_answer_cuts_the_rate_once_per_cooldown(settings):
    settings.MAIL_RATE_LIMIT = None
    Pace.objects.create(mailer="transport", rate=20.0)
    throttled = answers.Verdict(Fault.THROTTLED, "rate")

    pace.throttled("transport", throttled)
    cut = Pace.objects.get().rate
    pace.throttled("transport", throttled)  # within the cooldown: no second cut

    assert cut == pytest.approx(pace.DECREASE * 20)
    assert Pace.objects.get().rate == cut


@pytest.mark.django_db
def test_the_rate_grows_back_while_mail_waits_up_to_the_limit(settings):
    settings.MAIL_RATE_LIMIT = 20.0
    now = time.time()
    Pace.objects.create(mailer="transport", rate=19.99, next_free=now + 0.2, cut_at=now - 5)

    pace._lease("transport", Lane.TRANSACTIONAL, pace._Local(), now)

    assert Pace.objects.get().rate == 20.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "limit, rate, grown",
    [
        (20.0, 18, 18 * (1 + pace.INCREASE_TOLD)),
        (20.0, 16.2, 16.2 * (1 + pace.INCREASE)),
        (None, 18, 18 * (1 + pace.INCREASE)),
    ],
    ids=["told, cut once: back within two seconds", "told, cut twice: slowly", "learned: slowly"],
)
def test_a_second_after_a_cut_the_rate_grows_back_fast_only_one_cut_from_its_limit(
    settings, limit, rate, grown
):
    settings.MAIL_RATE_LIMIT = limit
    now = time.time()
    cut = now - 1.5
    Pace.objects.create(
        mailer="transport", rate=rate, next_free=now + 0.2, cut_at=cut, raised_at=cut
    )

    pace._lease("transport", Lane.TRANSACTIONAL, pace._Local(), now)

    assert Pace.objects.get().rate == pytest.approx(grown)


@pytest.mark.django_db
def test_retry_after_pauses_every_lane():
    pace.throttled("transport", answers.Verdict(Fault.THROTTLED, "rate", pause=30))
    now = time.time()

    for lane in Lane:
        held = pace._lease("transport", lane, pace._Local(), now)
        assert held is not None and held.until == pytest.approx(now + 30, abs=1)


@pytest.mark.django_db
def test_bulk_mail_stops_short_of_the_quota_transactional_mail_at_it(settings):
    settings.MAIL_DAILY_QUOTA, settings.MAIL_DAILY_QUOTA_RESERVE = 10, 0.2
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    Usage.objects.create(mailer="transport", hour=hour - timedelta(hours=30), sent=500)  # gone
    Usage.objects.create(mailer="transport", hour=hour - timedelta(hours=2), sent=8)
    now = time.time()

    bulk = pace._lease("transport", Lane.BULK, pace._Local(), now)
    transactional = pace._Local()
    transactional.waiting = 5

    assert bulk is not None and "quota" in bulk.why
    assert bulk.until == pytest.approx((hour - timedelta(hours=2) + pace.DAY).timestamp())
    assert now <= pace._lease("transport", Lane.TRANSACTIONAL, transactional, now) <= time.time()
    assert transactional.free_left == 1  # and one for the caller
    assert pace.standing()["quota_used"] == 10


@pytest.mark.django_db
def test_a_throttled_mail_is_held_not_failed_and_goes_back_in_line(server, committed, monkeypatch):
    released = []
    monkeypatch.setattr(sweeper, "release_at", released.append)
    server.errors.append(smtplib.SMTPDataError(454, SES_RATE))

    with committed():
        post_office.send("ada@example.com", subject="Reset", message="Your link")
    delivery = Delivery.objects.get()

    assert (delivery.state, delivery.fault, delivery.failed_attempts) == (
        State.HELD,
        Fault.THROTTLED,
        0,
    )
    assert Email.objects.get().number_of_retries in (0, None)
    assert released and released[0] <= time.time() + 2  # back in line at its next slot
    Delivery.objects.update(due=timezone.now())  # time passes
    Pace.objects.update(paused_until=0.0)  # the pause the answer began is over
    sweeper.release_held()

    assert Delivery.objects.get().state == State.SENT
    assert Email.objects.get().status == STATUS.sent
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_thread_waiting_for_its_slot_holds_none_of_the_sites_connections(
    server, committed, monkeypatch
):
    held_while_waiting = []
    acquire = pace.acquire

    def waits(mailer, lane):
        held_while_waiting.append(connections.open_now(mailer))
        return acquire(mailer, lane)

    monkeypatch.setattr(pace, "acquire", waits)
    connections.close_idle("transport")  # kept open by the tests before
    with committed():
        post_office.send("ada@example.com", subject="Reset", message="Your link")

    assert held_while_waiting == [0]
    assert (Delivery.objects.get().state, len(mail.outbox)) == (State.SENT, 1)


@pytest.mark.django_db
def test_a_mail_the_server_took_is_sent_though_its_connection_cannot_go_back(
    server, committed, monkeypatch
):
    def database_gone(alias, slot):
        raise OperationalError("sorry, too many clients already")

    monkeypatch.setattr(slots, "allowed", database_gone)
    with committed():
        post_office.send("ada@example.com", subject="Reset", message="Your link")

    assert (Delivery.objects.get().state, len(mail.outbox)) == (State.SENT, 1)


@pytest.mark.django_db
def test_bulk_mail_goes_to_its_own_queue_one_mail_a_task(committed, monkeypatch, settings):
    tasks = []
    publish = send_emails.apply_async

    def counted(args, *more, **options):
        tasks.append((options["queue"], len(args[0])))
        return publish(args, *more, **options)

    monkeypatch.setattr(send_emails, "apply_async", counted)
    news = [
        {"recipients": [f"n{n}@example.com"], "message": "News", "priority": "low"}
        for n in range(3)
    ]
    with committed():
        post_office.send_many([*news, {"recipients": ["ada@example.com"], "message": "Your code"}])

    assert sorted(tasks) == [(settings.MAIL_QUEUE, 1), *[(settings.MAIL_BULK_QUEUE, 1)] * 3]


@pytest.mark.django_db
def test_a_spent_quota_warns_in_mail_health_and_the_admin_without_failing(
    client, admin_client, settings, monkeypatch
):
    monkeypatch.setattr(celery_app.control, "ping", lambda **kwargs: [{"worker": "pong"}])
    settings.MAIL_DAILY_QUOTA, settings.HEALTH_TOKEN = 5, "a-token-for-monitoring"
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    Usage.objects.create(mailer="transport", hour=hour, sent=5)
    email = post_office.send("ada@example.com", subject="News", message="Body", priority="low")
    Delivery.objects.filter(email_id=email.pk).update(
        state=State.HELD, due=timezone.now() + timedelta(hours=3), reason="quota"
    )

    health = client.get("/healthz/mail", headers={"Authorization": "Bearer a-token-for-monitoring"})
    page = admin_client.get("/admin/post_office/email/").content.decode()

    assert health.status_code == 200
    assert health.json()["limits"] == (
        "the daily quota of 5 is spent; 1 mails held for the provider's limits"
    )
    assert "quota 5 of 5 used in 24 hours" in page
    assert '<a href="?lane=bulk">bulk 1</a>' in page
