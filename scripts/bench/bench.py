"""`make bench`: how fast a baked site's mail path is, next to what users would do instead.

Bakes a site into build/bench/, then measures in one go, on the machine's
RabbitMQ (a fresh virtual host) and PostgreSQL (a fresh database), with SMTP
servers that answer after 0 and 50 ms, each in a process of its own:

- raw capacity: smtplib straight to the SMTP server, over one and over many connections;
- what send_mail() costs the request: synchronous SMTP, the classic recipe
  (post_office priority 'now' -> djcelery_email's CeleryEmailBackend), and the
  site, on SQLite and PostgreSQL;
- end to end: from the first send_mail() to the last mail accepted by the server,
  the classic recipe with its prefork worker of 2 processes against the site
  with deploy/bin/worker;
- the workers alone: tasks published by send_mail() wait in RabbitMQ, then the
  worker starts, from the first to the last mail accepted;
- a backlog drain: due mails inserted in bulk, then the sweeper and the site's
  worker, until every mail is recorded as sent; time and peak memory;
- the database's work per mail (statements, transactions, those that wrote, rows written)
  for the request, the hand-off, the worker and the sweeper, and PostgreSQL's own count of
  commits and rows written from send_mail() to "sent", the classic recipe beside the site;
- where the site's worker's CPU goes, stage by stage, sampled by py-spy (flame graphs
  in build/bench/), for the template before (BEFORE, from git) and as it is now;
- a provider-like server (STARTTLS, AUTH, 20 ms a command, 100 ms more on DATA, 20
  connections per client): end to end, and the connections opened per 1000 mails;
- the provider's limits (limits.py): a server throttling at 20/s as SES does, the site
  told the limit and not, with a worker process per core and with one; and a newsletter at 50/s with
  a transactional mail every 0.5 s. `--only limits` runs these alone.

Prints tables and which targets hold; writes build/bench/results.json and
build/bench/benchmark.png. `--quick` runs small sizes for a first look, `--full`
the sizes the targets name, and also writes docs/benchmark-results.json, the run the
README shows (`make bench-readme` writes its tables there).
"""

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import database_work
import limits
import psycopg
import report
import scenarios
from baked import TEMPLATE, BakedSite, template_at
from floors import floors
from harness.services import postgres_database, rabbitmq_vhost
from harness.smtp_catcher import free_port
from procfs import MachineLoad
from scenarios import BEFORE
from sink import ProviderSink, Sink

# The default fits in about 10 minutes on 2 cores; --full takes the sizes of the
# targets (10 000 mails end to end, a 100 000 backlog) and about 20 minutes.
SIZES = {
    "quick": {
        "raw": 500,
        "requests": 200,
        "end_to_end": [300],
        "worker": 300,
        "drain": [1000, 5000],
        "provider": [100, 300],
        "limits": {"rate": 200, "newsletter": 1000},
    },
    "default": {
        "raw": 2000,
        "requests": 1000,
        "end_to_end": [1000, 5000],
        "worker": 1000,
        "drain": [2000, 20000],
        "provider": [200, 1000],
        "limits": {"rate": 400, "newsletter": 2000},
    },
    "full": {
        "raw": 2000,
        "requests": 1000,
        "end_to_end": [1000, 10000],
        "worker": 1000,
        "drain": [10000, 100000],
        "provider": [300, 2000],
        "limits": {"rate": 1000, "newsletter": 5000},
    },
}
RAW_CONNECTIONS = 50
DRAIN_DELAY_MS = 0
OUT = TEMPLATE / "build" / "bench"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, for a first look (2 minutes)")
    size.add_argument("--full", action="store_true", help="the sizes of the targets (about 20 minutes)")
    parser.add_argument("--delays", default="0,50", help="SMTP server answer delays in ms (default 0,50)")
    parser.add_argument("--only", choices=["limits"], help="run only this group of scenarios")
    args = parser.parse_args()
    # Stopped with SIGTERM, still remove the virtual host and the database and stop the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    sizes = SIZES["quick" if args.quick else "full" if args.full else "default"]
    delays = [int(delay) for delay in args.delays.split(",")]

    started, load = time.monotonic(), MachineLoad()
    site = BakedSite.bake(OUT / "site")
    before_template = template_at(BEFORE, OUT / "before-template")
    before = before_template and BakedSite.bake(OUT / "before", before_template)
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(rabbitmq_vhost("bench"))
        postgres = stack.enter_context(postgres_database("bench"))
        sinks = {
            delay: stack.enter_context(Sink(free_port(), delay))
            for delay in sorted({*delays, DRAIN_DELAY_MS})
        }
        sinks["provider"] = stack.enter_context(ProviderSink(free_port()))
        site.env = {"CELERY_BROKER_URL": broker, "DJANGO_DEBUG": "false"}
        if before:
            before.env = site.env
        sqlite = f"sqlite:///{site.path / 'db.sqlite3'}"
        for database in (sqlite, postgres):
            site.python("manage.py", "migrate", "--verbosity", "0", env={"DATABASE_URL": database})
        results = {
            "machine": machine(postgres),
            "sizes": sizes,
            "failures": [],
            "floors": [],
            "raw": [],
            "request": [],
            "end_to_end": [],
            "worker": [],
            "drain": [],
            "provider": [],
            "profile": [],
            "database": [],
            "limits": [],
        }
        if args.only != "limits":
            measure(results, site, before, sizes, delays, sinks, sqlite, postgres)
        measure_limits(results, site, before, sizes["limits"], postgres)
    results["machine_busy"], results["waiting_for_cpu"] = load.busy(), load.waiting_for_cpu()
    results["seconds"] = time.monotonic() - started
    results["targets"] = report.targets(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    if args.full and not args.only:  # the run the README shows: `make bench-readme` writes its tables there
        report.RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if not args.only:
        report.chart(results, OUT / "benchmark.png")
    print()
    print(report.limits_report(results) if args.only == "limits" else report.tables(results))
    print(f"\nTook {results['seconds'] / 60:.1f} minutes; wrote results.json and benchmark.png in {OUT}.")
    if args.full and not args.only:
        print(f"Wrote {report.RESULTS}: `make bench-readme` puts its tables in README.md.")


def run_step(results, kind, what, function, *args):
    """Run one measurement, print how long it took, and add its figures (or its failure) to `results`."""
    print(f"{kind}: {what} ...", end=" ", flush=True)
    began = time.monotonic()
    try:
        found = function(*args)
    except RuntimeError as error:
        print(f"FAILED: {error}", flush=True)
        results["failures"].append({"kind": kind, "what": what, "error": str(error)})
        return
    results[kind] += found if isinstance(found, list) else [found]
    print(f"{time.monotonic() - began:.0f} s", flush=True)


def measure(results, site, before, sizes, delays, sinks, sqlite, postgres):
    def step(*args):
        run_step(results, *args)

    what = "a bare commit on each database, a confirmed publish"
    step("floors", what, floors, postgres, site.env["CELERY_BROKER_URL"], sizes["requests"])
    for delay in delays:
        # One connection to a slow server is slow by definition: fewer mails.
        one = sizes["raw"] if delay == 0 else max(20, 5000 // delay)
        for connections, count in ((1, one), (RAW_CONNECTIONS, sizes["raw"])):
            what = f"{count} mails over {connections} connections, {delay} ms server"
            step("raw", what, scenarios.raw_capacity, sinks[delay], count, connections)
    for delay in delays:
        what = f"synchronous SMTP, {delay} ms server"
        step(
            "request",
            what,
            scenarios.request_cost,
            site,
            None,
            "sqlite",
            sqlite,
            sizes["requests"],
            sinks[delay],
        )
    for setup in (scenarios.CLASSIC, scenarios.SITE):
        for database, url in (("sqlite", sqlite), ("postgres", postgres)):
            what = f"{setup.name} on {database}"
            step(
                "request",
                what,
                scenarios.request_cost,
                site,
                setup,
                database,
                url,
                sizes["requests"],
                sinks[0],
            )
    for delay in delays:
        # The classic recipe is slow: only the smallest size.
        for setup, counts in (
            (scenarios.CLASSIC, sizes["end_to_end"][:1]),
            (scenarios.SITE, sizes["end_to_end"]),
        ):
            for count in counts:
                what = f"{setup.name}, {count} mails, {delay} ms server"
                step("end_to_end", what, scenarios.end_to_end, site, setup, postgres, count, sinks[delay])
    for delay in delays:
        for setup in (scenarios.CLASSIC, scenarios.SITE, scenarios.SITE_ONE_PROCESS):
            count = sizes["worker"]
            what = f"{setup.name}'s worker alone, {count} tasks waiting, {delay} ms server"
            step("worker", what, scenarios.worker_capacity, site, setup, postgres, count, sinks[delay])
    if before is None:
        print(f"database, profile: the template at {BEFORE} is not in this clone's git history: no 'before'")
    # The database's work per mail, the template before (BEFORE) beside the classic recipe and the site.
    counted = [(site, scenarios.CLASSIC), (site, scenarios.SITE), (before, scenarios.SITE_BEFORE)]
    for baked, setup in counted if before else counted[:2]:
        database_work.write_settings(baked, setup.settings)
        what = f"{setup.name}, {sizes['worker']} mails, 0 ms server, statements and commits counted"
        with database_of(baked, before, postgres, "bench_before_database") as database:
            step("database", what, database_work.per_mail, baked, setup, database, sizes["worker"], sinks[0])
    # Where the site's worker's CPU goes, before (the template at BEFORE) and now.
    profiled = [(before, scenarios.SITE_BEFORE, "before"), (site, scenarios.SITE, "after")]
    for baked, setup, name in profiled if before else profiled[1:]:
        what = f"{setup.name}'s worker alone, {sizes['worker']} tasks, 0 ms server, sampled by py-spy"
        with database_of(baked, before, postgres, "bench_before_profile") as database:
            args = (baked, setup, database, sizes["worker"], sinks[0], OUT / f"worker-flame-{name}")
            step("profile", what, scenarios.worker_capacity, *args)
    for count in sizes["drain"]:
        what = f"{count} mails, {DRAIN_DELAY_MS} ms server"
        step("drain", what, scenarios.drain, site, scenarios.SITE, postgres, count, sinks[DRAIN_DELAY_MS])
    # The classic recipe opens a connection a mail: the smaller size only.
    classic, site_count = sizes["provider"]
    for setup, count in ((scenarios.CLASSIC, classic), (scenarios.SITE, site_count)):
        what = f"{setup.name}, {count} mails, provider-like server"
        step("provider", what, scenarios.provider, site, setup, postgres, count, sinks["provider"])


@contextlib.contextmanager
def database_of(baked, before, postgres, name):
    """The site's database; the template before gets one of its own, its tables as its own
    migrations make them (today's need a lane it never writes)."""
    if baked is not before:
        yield postgres
        return
    with postgres_database(name) as database:
        before.python("manage.py", "migrate", "--verbosity", "0", env={"DATABASE_URL": database})
        yield database


def measure_limits(results, site, before, sizes, postgres):
    """The provider's limits: the rate against a throttling server, and a newsletter's transactional mail."""
    count = sizes["rate"]
    rate_runs = [
        (setup, told) for told in (True, False) for setup in (scenarios.SITE, scenarios.SITE_ONE_PROCESS)
    ]
    for setup, told in [*rate_runs, (scenarios.CLASSIC, False)]:
        what = (
            f"{setup.name}, {count} mails, server at {limits.RATE_LIMIT}/s, {'told' if told else 'not told'}"
        )
        run_step(results, "limits", what, limits.rate, site, setup, postgres, count, told)
    count = sizes["newsletter"]
    with contextlib.ExitStack() as stack:
        newsletter_runs = [(site, scenarios.SITE, postgres, True), (site, scenarios.CLASSIC, postgres, False)]
        if before:  # it knows no MAIL_RATE_LIMIT; its tables as its own migrations make them
            before_database = stack.enter_context(postgres_database("bench_before"))
            before.python("manage.py", "migrate", "--verbosity", "0", env={"DATABASE_URL": before_database})
            newsletter_runs.append((before, scenarios.SITE_BEFORE, before_database, False))
        for baked, setup, database, told in newsletter_runs:
            what = (
                f"{setup.name}, newsletter of {count} at {limits.NEWSLETTER_LIMIT}/s with transactional mail"
            )
            run_step(results, "limits", what, limits.newsletter, baked, setup, database, count, told)


def machine(postgres):
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    with psycopg.connect(postgres) as connection:
        postgresql = connection.execute("SHOW server_version").fetchone()[0].split()[0]
    rabbitmq = subprocess.run(["rabbitmqctl", "-q", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_kb / 1024**2,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgresql,
        "rabbitmq": rabbitmq or "?",
        "load_average_at_start": os.getloadavg(),
    }


if __name__ == "__main__":
    sys.exit(main())
