"""Sending within a provider's limits, with real workers, RabbitMQ, PostgreSQL and an SMTP
server that throttles as Amazon SES does: the rate limit holds for two worker processes
together, a site told no limit slows down, transactional mail overtakes a bulk backlog,
the daily quota survives a restart of the worker, and the connections are capped."""

import time

import pytest
from harness.baked_site import bake
from harness.containers import ONE_AT_A_TIME
from harness.fake_email_api import FakeEmailApi
from harness.figures import report
from harness.postfix_relay import postfix_relay
from harness.processes import wait_for
from harness.smtp_catcher import SmtpCatcher, most_in_any_second

# Timed to the second: never beside a container build (one xdist worker runs these and those).
pytestmark = ONE_AT_A_TIME

LIMIT = 20  # mails a second the server takes, as SES's production accounts start near
NEWS_LIMIT = 10  # the rate of a second mailer, "news", added to the site's MAILERS
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
SEND_THROUGH = """
from post_office import mail
for n in range({count}):
    mail.send(f"n{{n}}@example.com", "site@example.com", subject="News", message="News", backend={alias!r})
"""
# Seconds a send under way in another thread may take to land after a throttling answer.
IN_FLIGHT = 0.5


@pytest.fixture
def limited_site(tmp_path, rabbitmq, postgres):
    """A default bake on PostgreSQL and the machine's RabbitMQ; `configure(smtp, **env)`."""
    site = bake(tmp_path)

    def configure(smtp, **env):
        site.env = {
            "DATABASE_URL": postgres,
            "CELERY_BROKER_URL": rabbitmq,
            "EMAIL_URL": smtp.url,
            "MAIL_RETRY_INTERVAL": "1",
            "WORKER_PROCESSES": "1",  # each worker one process, as on two hosts
            **env,
        }
        site.manage("migrate", "--verbosity", "0")

    site.configure = configure
    yield site
    site.stop_all()


def attempts(site):
    return site.script("attempts.py")


def all_sent(site, count):
    return lambda: site.statuses() == {"sent": count}


def test_two_workers_told_the_limit_keep_to_it_and_use_it(limited_site):
    with SmtpCatcher(per_second=LIMIT) as smtp:
        limited_site.configure(smtp, MAIL_RATE_LIMIT=f"{LIMIT}/s")
        limited_site.start_worker("one")
        limited_site.start_worker("two")
        limited_site.script("send.py", "--plain", "200")

        wait_for(all_sent(limited_site, 200), 60, "200 mails sent")

    throttled = len(smtp.throttled_at)
    steady = smtp.arrived_at[LIMIT:]  # past the first second's burst
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    # Every mail the server saw, taken or throttled: the site's slots are 3 % further apart
    # than the limit (more as the workers measure their mails landing further apart, and in
    # the first seconds), so a mail up to 30 ms later than the one a second after it still
    # keeps each second within it; a process stalled mid-send may make one more, within the
    # 1 % of throttled answers the design allows (2 of 200).
    offered = most_in_any_second(sorted(smtp.arrived_at + smtp.throttled_at))
    report(
        f"[limits] told {LIMIT}/s, 2 workers: {rate:.1f} mails/s, {throttled} throttled of 200, "
        f"at most {offered} in a second"
    )
    assert offered <= LIMIT + 2, f"{offered} mails in one second against a limit of {LIMIT}/s"
    assert throttled <= 2, f"{throttled} throttled answers for 200 mails"
    # Uses it: make bench measures the 95 % target on a quiet machine; here other tests share
    # the two cores (16/s seen), and a pace that wasted its slots would send far fewer.
    assert rate >= 0.6 * LIMIT, f"{rate:.1f} mails/s against a limit of {LIMIT}/s"
    assert attempts(limited_site)["failed_attempts"] == 0


def test_two_workers_told_no_limit_slow_down_and_deliver_everything(limited_site):
    with SmtpCatcher(per_second=LIMIT) as smtp:
        limited_site.configure(smtp)
        limited_site.start_worker("one")
        limited_site.start_worker("two")
        started = time.monotonic()
        limited_site.script("send.py", "--plain", "200")

        wait_for(all_sent(limited_site, 200), 90, "200 mails sent")
        seconds = time.monotonic() - started

    throttled = len(smtp.throttled_at)
    report(
        f"[limits] not told, provider at {LIMIT}/s, 2 workers: 200 in {seconds:.1f} s, "
        f"{throttled} throttled answers"
    )
    # A site that does not slow down draws about 3.5 throttled answers per mail; make bench
    # measures the 10 % target.
    assert throttled <= 0.25 * 200, f"{throttled} throttled answers for 200 mails"
    assert attempts(limited_site)["failed_attempts"] == 0
    assert smtp.lost_and_duplicates([m["Message-ID"] for m in smtp.messages]) == (0, 0)


def test_a_mailer_added_to_mailers_keeps_to_its_own_limit_and_the_transport_to_none(limited_site):
    with SmtpCatcher(per_second=NEWS_LIMIT) as news, SmtpCatcher() as smtp:
        add_mailer(limited_site, "news", news)
        limited_site.configure(smtp, MAIL_RATE_LIMITS=f"news:{NEWS_LIMIT}/s")
        limited_site.start_worker("one")
        limited_site.start_worker("two")
        limited_site.manage("shell", "--no-imports", "-c", SEND_THROUGH.format(count=60, alias="news"))
        limited_site.script("send.py", "--plain", "60")

        wait_for(all_sent(limited_site, 120), 60, "120 mails sent")

    offered = most_in_any_second(sorted(news.arrived_at + news.throttled_at))
    report(
        f"[limits] a mailer told {NEWS_LIMIT}/s beside a transport told nothing: at most {offered} in "
        f"a second, {len(news.throttled_at)} throttled"
    )
    assert (len(news.messages), len(smtp.messages)) == (60, 60)
    # As for the transport told its limit: one mail over, from a mail late on a busy machine.
    assert offered <= NEWS_LIMIT + 1, f"{offered} mails in one second against its limit of {NEWS_LIMIT}/s"
    assert smtp.most_in_any_second() > NEWS_LIMIT + 1, "the transport was held to the other mailer's limit"


def add_mailer(site, alias, smtp):
    """Add a mailer sending to `smtp` to the baked site's MAILERS, as a site adds a second provider."""
    settings = site.path / "config" / "mail.py"
    mailer = {"BACKEND": SMTP_BACKEND, "OPTIONS": {"host": "127.0.0.1", "port": smtp.controller.port}}
    added = settings.read_text().replace("MAILERS = {\n", f"MAILERS = {{\n    {alias!r}: {mailer!r},\n", 1)
    settings.write_text(added)


def test_transactional_mail_overtakes_a_bulk_backlog(limited_site):
    with SmtpCatcher(per_second=LIMIT) as smtp:
        limited_site.configure(smtp, MAIL_RATE_LIMIT=f"{LIMIT}/s")
        limited_site.script("send.py", "--plain", "600", "--priority", "low")
        limited_site.start_worker("one")
        limited_site.start_worker("two")
        wait_for(lambda: len(smtp.messages) >= 2 * LIMIT, 30, "the newsletter going out")

        resets = limited_site.script("timed_resets.py", "10", "--every", "0.3")

        arrived = wait_for(
            lambda: (at := arrivals(smtp, [subject for subject, _ in resets])) and len(at) == 10 and at,
            30,
            "the ten resets",
        )
        bulk_left = 600 - (len(smtp.messages) - 10)
    waits = sorted(arrived[subject] - sent_at for subject, sent_at in resets)
    report(
        f"[limits] 10 resets behind 600 bulk at {LIMIT}/s: slowest {waits[-1]:.2f} s, "
        f"median {waits[5]:.2f} s, {bulk_left} bulk still waiting"
    )
    assert bulk_left > 0, "the bulk backlog was gone before the resets: nothing to overtake"
    # In one line with the bulk mail a reset would wait about 28 s; make bench measures the
    # 1 s target (p99) on a quiet machine.
    assert waits[-1] < 5.0, f"the slowest reset took {waits[-1]:.2f} s"


def arrivals(smtp, subjects):
    """{subject: when the server accepted it} of the messages among `subjects` it took."""
    return {
        message["Subject"]: at
        for message, at in zip(smtp.messages, smtp.arrived_at, strict=True)
        if message["Subject"] in subjects
    }


def test_the_daily_quota_holds_across_a_restart_and_releases_its_mail_a_day_later(limited_site):
    with SmtpCatcher() as smtp:
        limited_site.configure(smtp, MAIL_DAILY_QUOTA="30", MAIL_RATE_LIMIT="")
        worker = limited_site.start_worker("one")
        limited_site.script("send.py", "--plain", "40")

        wait_for(lambda: attempts(limited_site)["states"] == {"sent": 30, "held": 10}, 60, "30 sent, 10 held")
        limited_site.stop(worker)
        limited_site.start_worker("one")
        limited_site.script("send.py", "--plain", "5", "--tag", " after the restart")

        wait_for(lambda: attempts(limited_site)["states"] == {"sent": 30, "held": 15}, 60, "the next 5 held")
        assert len(smtp.messages) == 30
        limited_site.script("day_passes.py")
        limited_site.manage("send_queued_mail")

        wait_for(all_sent(limited_site, 45), 60, "every held mail sent")
    assert attempts(limited_site)["failed_attempts"] == 0


def test_two_workers_hold_no_more_connections_than_the_site_may(limited_site):
    with SmtpCatcher(delay=0.05) as smtp:
        limited_site.configure(smtp, MAIL_MAX_CONNECTIONS="3")
        limited_site.start_worker("one")
        limited_site.start_worker("two")
        limited_site.script("send.py", "--plain", "100")

        wait_for(all_sent(limited_site, 100), 60, "100 mails sent")

    report(f"[limits] MAIL_MAX_CONNECTIONS=3, 2 workers of 20 threads: at most {smtp.most_open} open")
    assert smtp.most_open <= 3


def test_a_server_taking_3_connections_is_held_to_3_and_loses_nothing(limited_site):
    with SmtpCatcher(delay=0.05, max_connections=3) as smtp:
        limited_site.configure(smtp)
        limited_site.start_worker("one")
        limited_site.start_worker("two")
        limited_site.script("send.py", "--plain", "100")

        wait_for(all_sent(limited_site, 100), 90, "100 mails sent")
        refused_while_learning = smtp.connections_refused
        limited_site.script("send.py", "--plain", "100", "--tag", " later")

        wait_for(all_sent(limited_site, 200), 90, "the next 100 sent")

    report(
        f"[limits] a server taking 3 connections, 2 workers: {refused_while_learning} refused "
        f"while learning, {smtp.connections_refused - refused_while_learning} after"
    )
    assert smtp.connections_refused == refused_while_learning, "the site opened more than 3 again"
    assert attempts(limited_site)["failed_attempts"] == 0


def test_an_api_asking_to_retry_after_3_s_hears_nothing_from_the_site_for_3_s(limited_site, smtp_server):
    with FakeEmailApi("postmark", retry_after=3) as api:
        limited_site.configure(
            smtp_server, EMAIL_SERVICE="postmark", POSTMARK_API_URL=api.url, POSTMARK_SERVER_TOKEN="made-up"
        )
        limited_site.start_worker("one")
        limited_site.script("send.py", "--plain", "10")

        wait_for(all_sent(limited_site, 10), 60, "10 mails sent")

    [(throttled_at, status), *later] = sorted(api.answered)
    # Requests other threads had under way before the 429 reached the site may still land.
    inside = [at for at, _ in later if throttled_at + IN_FLIGHT < at < throttled_at + 3]
    report(f"[limits] API 429 with Retry-After 3: {len(inside)} requests inside the pause")
    assert status == 429
    assert not inside, f"{len(inside)} requests inside the pause"
    assert attempts(limited_site)["failed_attempts"] == 0


@pytest.mark.containers
def test_a_postfix_relay_limiting_its_clients_gets_every_mail_and_the_site_fails_none(
    limited_site, engine, tmp_path
):
    """Debian's Postfix taking 5 connections and 30 mails in 10 s from a client (421 and 450
    beyond, as relays answer), a site told neither: it learns both and loses nothing."""
    with postfix_relay(engine, tmp_path) as relay:
        limited_site.configure(relay)
        limited_site.start_worker("one")
        started = time.monotonic()
        limited_site.script("send.py", "--plain", "90")

        try:
            wait_for(lambda: relay.delivered() == 90, 180, "90 mails in the relay's mailbox")
        except pytest.fail.Exception as timed_out:
            found = f"{relay.delivered()} in the mailbox, the site's mail: {attempts(limited_site)}"
            raise AssertionError(found) from timed_out
        seconds = time.monotonic() - started
        connections, mails = relay.refusals()

    report(
        f"[limits] Postfix (5 connections, 30 mails in 10 s), told nothing: 90 mails in {seconds:.0f} s, "
        f"{connections} connections and {mails} mails refused on the way"
    )
    assert limited_site.statuses() == {"sent": 90}
    assert attempts(limited_site)["failed_attempts"] == 0
