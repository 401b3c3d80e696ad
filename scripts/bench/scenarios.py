"""The measurements. Each returns a dict of figures that goes into results.json as it is."""

import contextlib
import os
import smtplib
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cpu_profile
import psycopg
from baked import CLASSIC_WORKER, SITE_WORKER, Workers
from harness.processes import poll
from procfs import MachineLoad, children_cpu_seconds, self_cpu_seconds
from queues import purge_queue

MESSAGE = b"From: bench@example.com\r\nTo: user@example.com\r\nSubject: raw\r\n\r\nHello\r\n"
SENT = 0  # post_office's STATUS.sent
# End to end, mail comes from this many processes at once: the web server's
# workers (WEB_WORKERS in deploy/bin/web).
SENDERS = 2


@dataclass(frozen=True)
class Setup:
    """How a variant runs: its settings module, its worker command line and how many of them,
    and how many consumers each of those starts."""

    name: str
    settings: str
    worker: tuple
    queue: str
    processes: int = 1
    worker_env: dict = field(default_factory=dict)
    consumers: int = 1


CLASSIC = Setup("classic", "config.settings_classic", CLASSIC_WORKER, "celery")
# MAIL_QUEUE: the slug. deploy/bin/worker starts a worker process per core (config/workers.py).
SITE = Setup("site", "config.settings", SITE_WORKER, "acme_mail", consumers=len(os.sched_getaffinity(0)))
# The template before the worker read a task's mails in one go (a git ref): the profile's
# "before", baked from it and run the same way as the site.
BEFORE = "fb1a99e"
SITE_BEFORE = replace(SITE, name="site, before", consumers=1)
# The site's worker as one process of 20 threads, its default before one process per core.
SITE_ONE_PROCESS = replace(SITE, name="site, 1 process", worker_env={"WORKER_PROCESSES": "1"}, consumers=1)


def run_env(setup, database_url, sink):
    """The environment of a variant's senders and workers: its database, server and settings."""
    return {
        "DATABASE_URL": database_url,
        "EMAIL_URL": sink.url,
        **sink.env,
        "DJANGO_SETTINGS_MODULE": setup.settings,
    }


def raw_capacity(sink, count, connections):
    """smtplib straight to the sink: `count` mails over `connections` connections at once."""
    sink.reset()

    def send(share):
        with smtplib.SMTP("127.0.0.1", sink.port) as client:
            for _ in range(share):
                client.sendmail("bench@example.com", ["user@example.com"], MESSAGE)

    shares = split(count, connections)
    started, client_cpu, sink_cpu = time.monotonic(), self_cpu_seconds(), sink.cpu_seconds()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, shares))
    elapsed = time.monotonic() - started
    client_cpu, sink_cpu = self_cpu_seconds() - client_cpu, sink.cpu_seconds() - sink_cpu
    return {
        "delay_ms": sink.delay_ms,
        "connections": connections,
        "mails": count,
        "seconds": elapsed,
        "rate": sink.accepted.value / elapsed,
        "client_cpu_ms_per_mail": client_cpu * 1000 / count,
        "server_cpu_ms_per_mail": sink_cpu * 1000 / count,
    }


def request_cost(site, setup, database, database_url, count, sink):
    """What send_mail() costs the request, with no worker running (the broker keeps the tasks).

    With no setup, send_mail() talks SMTP itself, through the site's "smtp" mailer.
    """
    env = {"DATABASE_URL": database_url, "EMAIL_URL": sink.url}
    using = []
    if setup:
        env["DJANGO_SETTINGS_MODULE"] = setup.settings
    else:
        using = ["--using", "transport"]
    site.bench_script("empty_mail.py", env=env)
    sent = site.bench_script("timed_send.py", "--count", count, "--warm-up", 20, *using, env=env)
    if setup:
        purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
    costs = sorted(sent["costs_ms"])
    return {
        "variant": setup.name if setup else "sync",
        "database": database,
        "delay_ms": sink.delay_ms,
        "mails": count,
        "p50_ms": percentile(costs, 50),
        "p99_ms": percentile(costs, 99),
        "mean_ms": statistics.fmean(costs),
    }


def end_to_end(site, setup, database_url, count, sink, senders=SENDERS):
    """From the first send_mail() to the last mail accepted by the SMTP server.

    `senders` processes send at the same time, like the web server's workers.
    """
    env = run_env(setup, database_url, sink)
    site.bench_script("empty_mail.py", env=env)
    purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
    sink.reset()
    with start_workers(site, setup, env) as running:
        load, sender_cpu, worker_cpu = MachineLoad(), children_cpu_seconds(), running.cpu_seconds()
        sink_cpu = sink.cpu_seconds()
        sent = site.bench_scripts(
            "timed_send.py", [("--count", share) for share in split(count, senders)], env=env
        )
        sender_cpu = children_cpu_seconds() - sender_cpu
        arrived = poll(lambda: sink.accepted.value >= count or running.exited(), timeout=60 + count / 5)
        running.check_running()
        finished = sink.last_accepted.value
        worker_cpu = running.cpu_seconds() - worker_cpu
        sink_cpu = sink.cpu_seconds() - sink_cpu
        busy, waiting = load.busy(), load.waiting_for_cpu()
        with SentCounter(database_url) as count_sent:
            recorded = arrived and poll(lambda: count_sent() >= count, timeout=30)
            recorded_sent = count_sent()
        peak = running.peak_rss_mb()
    first = min(run["started"] for run in sent)
    elapsed = finished - first
    sending = max(run["finished"] for run in sent) - first
    return {
        "variant": setup.name,
        "delay_ms": sink.delay_ms,
        "mails": count,
        "seconds": elapsed if arrived else None,
        "rate": count / elapsed if arrived else None,
        "accepted": sink.accepted.value,
        "recorded_sent": recorded_sent,
        "all_recorded_sent": recorded,
        "senders": senders,
        "send_rate": count / sending,
        "send_p50_ms": percentile(sorted(cost for run in sent for cost in run["costs_ms"]), 50),
        "sender_cpu_ms_per_mail": sender_cpu * 1000 / count,
        "worker_cpu_ms_per_mail": worker_cpu * 1000 / count,
        "server_cpu_ms_per_mail": sink_cpu * 1000 / count,
        "machine_busy": busy,
        "waiting_for_cpu": waiting,
        "worker_peak_rss_mb": peak,
    }


def provider(site, setup, database_url, count, sink):
    """End to end to the provider-like server, and how many connections the mails took."""
    found = end_to_end(site, setup, database_url, count, sink)
    return {**found, "connections_per_1000": sink.connections.value * 1000 / count}


def worker_capacity(site, setup, database_url, count, sink, profile_to=None):
    """Tasks wait in RabbitMQ, one mail each as send_mail() publishes them; then the workers
    start. The rate from the first to the last mail accepted is what the workers can do.
    With `profile_to`, py-spy samples the (first) worker there, and the figures say where
    its threads' time went."""
    env = run_env(setup, database_url, sink)
    site.bench_script("empty_mail.py", env=env)
    purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
    site.bench_scripts("timed_send.py", [("--count", share) for share in split(count, SENDERS)], env=env)
    sink.reset()
    with start_workers(site, setup, env) as running:
        load, worker_cpu, sink_cpu = MachineLoad(), running.cpu_seconds(), sink.cpu_seconds()
        pid = running.first_worker_pid()
        with cpu_profile.sampled(pid, profile_to) if profile_to else contextlib.nullcontext():
            arrived = poll(lambda: sink.accepted.value >= count or running.exited(), timeout=60 + count / 5)
        running.check_running()
        worker_cpu = running.cpu_seconds() - worker_cpu
        sink_cpu = sink.cpu_seconds() - sink_cpu
        busy, waiting = load.busy(), load.waiting_for_cpu()
        with SentCounter(database_url) as count_sent:
            recorded = arrived and poll(lambda: count_sent() >= count, timeout=30)
        peak = running.peak_rss_mb()
    elapsed = sink.last_accepted.value - sink.first_accepted.value
    return {
        "variant": setup.name,
        "delay_ms": sink.delay_ms,
        "mails": count,
        "seconds": elapsed if arrived else None,
        "rate": (count - 1) / elapsed if arrived else None,
        "accepted": sink.accepted.value,
        "all_recorded_sent": recorded,
        "worker_cpu_ms_per_mail": worker_cpu * 1000 / count,
        "server_cpu_ms_per_mail": sink_cpu * 1000 / count,
        "machine_busy": busy,
        "waiting_for_cpu": waiting,
        "worker_peak_rss_mb": peak,
        "worker_env": setup.worker_env,
        "stages": cpu_profile.stages(f"{profile_to}.txt") if profile_to else None,
    }


def drain(site, setup, database_url, count, sink):
    """Time the sweeper and the workers from a backlog of `count` due mails to all recorded sent."""
    env = run_env(setup, database_url, sink)
    site.bench_script("empty_mail.py", env=env)
    purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
    began = time.monotonic()
    site.bench_script("backlog.py", count, env=env)
    queued_in = time.monotonic() - began
    sink.reset()
    with start_workers(site, setup, env) as running, SentCounter(database_url) as count_sent:
        load, worker_cpu = MachineLoad(), running.cpu_seconds()
        started = time.monotonic()
        sweeper = Sweeper(site, env)
        done = poll(
            lambda: count_sent() >= count or running.exited() or sweeper.exit_code, timeout=60 + count / 20
        )
        running.check_running()
        if sweeper.exit_code:
            raise RuntimeError(f"manage.py send_queued_mail exited {sweeper.exit_code}")
        finished = time.monotonic()
        worker_cpu = running.cpu_seconds() - worker_cpu
        busy, waiting = load.busy(), load.waiting_for_cpu()
        sweeper.join()
        peak = running.peak_rss_mb()
    return {
        "variant": setup.name,
        "delay_ms": sink.delay_ms,
        "mails": count,
        "backlog_insert_seconds": queued_in,
        "seconds": finished - started if done else None,
        "rate": count / (finished - started) if done else None,
        "accepted": sink.accepted.value,
        "sweeper_seconds": sweeper.seconds,
        "sweeper_exit": sweeper.exit_code,
        "sweeper_peak_rss_mb": sweeper.peak_rss_mb,
        "sweeper_cpu_ms_per_mail": sweeper.cpu_seconds * 1000 / count,
        "worker_cpu_ms_per_mail": worker_cpu * 1000 / count,
        "machine_busy": busy,
        "waiting_for_cpu": waiting,
        "worker_peak_rss_mb": peak,
    }


def start_workers(site, setup, env):
    return Workers(
        site,
        setup.worker,
        setup.queue,
        setup.processes,
        env={**env, **setup.worker_env},
        name=setup.name,
        consumers=setup.consumers,
    )


class Sweeper:
    """One run of `manage.py send_queued_mail`; wait4() gives its peak RSS when it exits."""

    def __init__(self, site, env):
        started = time.monotonic()
        self.process = site.popen([sys.executable, "manage.py", "send_queued_mail"], env=env)
        self.seconds = self.exit_code = self.peak_rss_mb = self.cpu_seconds = None

        def reap():
            _, status, usage = os.wait4(self.process.pid, 0)
            self.seconds = time.monotonic() - started
            self.exit_code = os.waitstatus_to_exitcode(status)
            self.process.returncode = self.exit_code
            self.peak_rss_mb = usage.ru_maxrss / 1024
            self.cpu_seconds = usage.ru_utime + usage.ru_stime

        self.thread = threading.Thread(target=reap)
        self.thread.start()

    def join(self):
        self.thread.join(600)


class SentCounter:
    """Counts the mails recorded as sent, over one connection to the site's PostgreSQL database."""

    def __init__(self, database_url):
        self.connection = psycopg.connect(database_url, autocommit=True)

    def __call__(self):
        query = "SELECT count(*) FROM post_office_email WHERE status = %s"
        return self.connection.execute(query, [SENT]).fetchone()[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.connection.close()


def split(count, parts):
    """`count` in `parts` nearly equal shares."""
    return [count // parts + (n < count % parts) for n in range(parts)]


def percentile(ordered, p):
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
