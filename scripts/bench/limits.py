"""Sending within a provider's limits: an SMTP server that throttles as Amazon SES does
(454 beyond its rate in any second, across connections), in this process.

- the rate: mails to a server taking 20 a second, the site told the limit and not told,
  with a worker process per core and with one (WORKER_PROCESSES=1), and the classic recipe;
- a newsletter: bulk mails (Precedence: bulk) to a server taking 50 a second while a
  transactional mail goes every 0.5 s: how long those take from send_mail() to the server.
"""

import json
import time

from baked import BENCH_SCRIPTS
from harness.baked_site import SCRIPTS as SITE_SCRIPTS
from harness.processes import poll
from harness.smtp_catcher import SmtpCatcher, most_in_any_second
from queues import purge_queue
from scenarios import SENDERS, percentile, split, start_workers

RATE_LIMIT = 20  # mails a second, as SES's production accounts start near
NEWSLETTER_LIMIT = 50
TRANSACTIONAL_EVERY = 0.5  # seconds between two transactional mails


def env_for(setup, database_url, smtp, rate_limit):
    """A variant's environment; `rate_limit` is what MAIL_RATE_LIMIT tells the site ("" for nothing)."""
    return {
        "DATABASE_URL": database_url,
        "EMAIL_URL": smtp.url,
        "DJANGO_SETTINGS_MODULE": setup.settings,
        "MAIL_RATE_LIMIT": rate_limit,
    }


def rate(site, setup, database_url, count, told):
    """`count` mails to a server taking RATE_LIMIT a second: how near the limit, how many 454s."""
    with SmtpCatcher(per_second=RATE_LIMIT) as smtp:
        env = env_for(setup, database_url, smtp, f"{RATE_LIMIT}/s" if told else "")
        site.bench_script("empty_mail.py", env=env)
        purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
        # Long enough for a site that slows down; the classic recipe retries a throttled mail
        # 3 minutes later (Celery's default), which this window leaves out.
        window = 30 + 2 * count / RATE_LIMIT
        with start_workers(site, setup, env) as running:
            site.bench_scripts(
                "timed_send.py", [("--count", share) for share in split(count, SENDERS)], env=env
            )
            poll(lambda: len(smtp.arrived_at) >= count or running.exited(), timeout=window)
            running.check_running()
            waited_until = time.time()
        arrived, throttled = list(smtp.arrived_at), len(smtp.throttled_at)
    return {
        "scenario": "rate",
        "variant": setup.name,
        "processes": setup.processes * setup.consumers,
        "told": told,
        "limit": RATE_LIMIT,
        "mails": count,
        "arrived": len(arrived),
        "window_seconds": window,
        "rate": accepted_rate(arrived, count, waited_until),
        "second_half_rate": accepted_rate(arrived[count // 2 :], count - count // 2, waited_until),
        "throttled": throttled,
        "throttled_per_1000": throttled * 1000 / count,
        "most_in_any_second": most_in_any_second(arrived),
    }


def newsletter(site, setup, database_url, count, told):
    """`count` bulk mails to a server taking NEWSLETTER_LIMIT a second while a transactional mail
    goes every TRANSACTIONAL_EVERY s: the transactional mails' time to the server."""
    # Transactional mails while the newsletter should still be going out at the limit.
    transactional = max(10, int(0.75 * count / NEWSLETTER_LIMIT / TRANSACTIONAL_EVERY))
    with SmtpCatcher(per_second=NEWSLETTER_LIMIT) as smtp:
        env = env_for(setup, database_url, smtp, f"{NEWSLETTER_LIMIT}/s" if told else "")
        site.bench_script("empty_mail.py", env=env)
        purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
        window = 30 + 2 * count / NEWSLETTER_LIMIT
        with start_workers(site, setup, env) as running:
            _, resets = site.pythons(
                [
                    (BENCH_SCRIPTS / "newsletter.py", count),
                    (SITE_SCRIPTS / "timed_resets.py", transactional, "--every", TRANSACTIONAL_EVERY),
                ],
                env=env,
            )
            poll(lambda: len(smtp.arrived_at) >= count + transactional or running.exited(), window)
            running.check_running()
        arrivals = {
            message["Subject"]: at for message, at in zip(smtp.messages, smtp.arrived_at, strict=True)
        }
        throttled = len(smtp.throttled_at)
    sent = json.loads(resets)
    last_sent = sent[-1][1]
    # A mail that never arrived in the window counts as the window's length.
    waits = sorted(arrivals.get(subject, sent_at + window) - sent_at for subject, sent_at in sent)
    bulk = [at for subject, at in arrivals.items() if subject.startswith("newsletter")]
    return {
        "scenario": "newsletter",
        "variant": setup.name,
        "processes": setup.processes * setup.consumers,
        "told": told,
        "limit": NEWSLETTER_LIMIT,
        "mails": count,
        "bulk_arrived": len(bulk),
        "bulk_left_at_last_transactional": count - sum(at <= last_sent for at in bulk),
        "transactional": len(sent),
        "transactional_missing": sum(subject not in arrivals for subject, _ in sent),
        "window_seconds": window,
        "p50_s": percentile(waits, 50),
        "p99_s": percentile(waits, 99),
        "throttled": throttled,
        "throttled_per_1000": throttled * 1000 / (count + len(sent)),
    }


def accepted_rate(arrived, count, waited_until):
    """Mails a second from the first accepted to the last; to the end of the wait if some never came."""
    end = arrived[-1] if len(arrived) >= count else waited_until
    return (len(arrived) - 1) / (end - arrived[0]) if len(arrived) > 1 and end > arrived[0] else None
