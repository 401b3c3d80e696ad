"""The database's work per mail: what the request, the hand-off, the worker and the sweeper
ask of PostgreSQL, counted in the site's own processes (site/statement_counts.py), and the
whole path from send_mail() to "sent" as PostgreSQL itself counts it for the bench's
database (pg_stat_database: commits, rows inserted, updated and deleted)."""

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import psycopg
from harness.processes import poll
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from queues import purge_queue
from scenarios import SENDERS, SentCounter, run_env, split, start_workers

COUNTED = "_counted"  # the settings module that counts: <settings>_counted
SETTINGS = '''"""The settings of {settings}, with every database statement counted (make bench)."""

import statement_counts  # noqa: F401

from {settings} import *  # noqa: F403
'''
ROLES = ("request", "handoff", "worker", "sweeper")
PATH = ("request", "handoff", "worker")
KINDS = ("statements", "transactions", "write_transactions", "rows_written")


def write_settings(site, settings):
    module = f"{settings}{COUNTED}".removeprefix("config.")
    (site.path / "config" / f"{module}.py").write_text(SETTINGS.format(settings=settings))


def per_mail(site, setup, database_url, count, sink):
    """`count` mails from send_mail() to the server with the workers running, then a backlog
    of `count` handed out by one run of the sweeper (its tasks dropped from the queue)."""
    folder = site.path / "log" / f"statements-{setup.name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = run_env(setup, database_url, sink)
    counted = {**env, "DJANGO_SETTINGS_MODULE": setup.settings + COUNTED, "STATEMENT_COUNTS_DIR": str(folder)}
    site.bench_script("empty_mail.py", env=env)
    purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
    sink.reset()
    before = settled_totals(database_url)
    requests = [("--count", share) for share in split(count, SENDERS)]
    site.bench_scripts("timed_send.py", requests, env={**counted, "STATEMENT_COUNTS_ROLE": "request"})
    with start_workers(site, setup, {**counted, "STATEMENT_COUNTS_ROLE": "worker"}) as running:
        poll(lambda: sink.accepted.value >= count or running.exited(), timeout=60 + count / 5)
        running.check_running()
    path = {kind: after - before[kind] for kind, after in settled_totals(database_url).items()}
    with SentCounter(database_url) as count_sent:
        recorded_sent = count_sent()

    # The site's settings make the backlog: post_office refuses with the classic's priority "now".
    site.bench_script("backlog.py", count, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"})
    site.python("manage.py", "send_queued_mail", env={**counted, "STATEMENT_COUNTS_ROLE": "sweeper"})
    purge_queue(site.env["CELERY_BROKER_URL"], setup.queue)
    counts = read_counts(folder)
    return {
        "variant": setup.name,
        "mails": count,
        "recorded_sent": recorded_sent,
        "per_mail": {role: {kind: counts[role][kind] / count for kind in KINDS} for role in ROLES},
        "path_per_mail": {kind: sum(counts[role][kind] for role in PATH) / count for kind in KINDS},
        "postgresql_per_mail": {kind: value / count for kind, value in path.items()},
    }


def read_counts(folder):
    """{role: Counter} added up over the processes that wrote to `folder`."""
    counts = {role: Counter() for role in ROLES}
    for written in Path(folder).glob("*.json"):
        for role, found in json.loads(written.read_text()).items():
            counts[role].update(found)
    return counts


def settled_totals(database_url):
    """pg_stat_database's counters of the database, once they stop moving (a backend adds its
    figures when its transaction ends or at the latest when it exits)."""
    name = conninfo_to_dict(database_url)["dbname"]
    # Asked from another database, so that asking adds no commit to this one.
    with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as connection:
        query = (
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
            "FROM pg_stat_database WHERE datname = %s"
        )
        last = None
        while (now := connection.execute(query, [name]).fetchone()) != last:
            last = now
            time.sleep(1.0)
    commits, rows = last
    return {"commits": commits, "rows_written": rows}
