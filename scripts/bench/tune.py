"""Try worker settings against each other: end to end at 50 and 0 ms, and a backlog drain.

    python scripts/bench/tune.py [--repeat 3] [--mails 2000] [--drain 10000] [NAME ...]

Each NAME is one of TRIALS below (all of them by default): the site's settings
with a few lines added, and a worker command line. Bakes a site into
build/bench/tune and prints the median of the repeats for every trial.
"""

import argparse
import contextlib
import statistics
import sys

import scenarios
from baked import TEMPLATE, BakedSite
from report import table
from scenarios import Setup
from services import postgres_database, rabbitmq_vhost
from sink import Sink, free_port


def trial(name, settings="", concurrency=16, pool="threads", processes=1, loglevel="INFO"):
    line = f"exec celery -A config worker --pool {pool} --concurrency {concurrency} --loglevel {loglevel}"
    command = ("sh", "-c", line + ' --hostname "$WORKER_NAME@%h"')
    return name, settings, Setup(name, f"config.settings_{name}", command, "mail", processes)


REUSE = "CELERY_DB_REUSE_MAX = 1000"
TRIALS = dict(
    (name, (settings, setup))
    for name, settings, setup in [
        trial("shipped"),
        trial("t32", concurrency=32),
        trial("t32_reuse", REUSE, concurrency=32),
        trial("t32_warn", concurrency=32, loglevel="WARNING"),
        trial("t32_reuse_warn", REUSE, concurrency=32, loglevel="WARNING"),
        trial("t64_reuse_warn", REUSE, concurrency=64, loglevel="WARNING"),
        trial("t16_reuse_warn", REUSE, concurrency=16, loglevel="WARNING"),
        trial("2x_t32_reuse_warn", REUSE, concurrency=32, processes=2, loglevel="WARNING"),
        trial("2x_t16_reuse_warn", REUSE, concurrency=16, processes=2, loglevel="WARNING"),
        trial(
            "t32_reuse_warn_prefetch4",
            f"{REUSE}; CELERY_WORKER_PREFETCH_MULTIPLIER = 4",
            concurrency=32,
            loglevel="WARNING",
        ),
        trial(
            "t32_reuse_warn_chunk50",
            f"{REUSE}; CELERY_EMAIL_CHUNK_SIZE = 50",
            concurrency=32,
            loglevel="WARNING",
        ),
        trial("prefork8_reuse_warn", REUSE, pool="prefork", concurrency=8, loglevel="WARNING"),
    ]
)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mails", type=int, default=2000, help="mails per end-to-end run")
    parser.add_argument("--drain", type=int, default=10000, help="mails per backlog drain")
    parser.add_argument("--delays", default="50,0")
    parser.add_argument("names", nargs="*", default=list(TRIALS))
    args = parser.parse_args()
    delays = [int(delay) for delay in args.delays.split(",")]

    site = BakedSite.bake(TEMPLATE / "build" / "bench" / "tune")
    for name in args.names:
        settings, _ = TRIALS[name]
        text = f"from .settings import *  # noqa: F403\n{settings.replace('; ', chr(10))}\n"
        (site.path / "config" / f"settings_{name}.py").write_text(text)
    rows = []
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(rabbitmq_vhost())
        postgres = stack.enter_context(postgres_database())
        sinks = {delay: stack.enter_context(Sink(free_port(), delay)) for delay in {*delays, 0}}
        site.env = {"CELERY_BROKER_URL": broker, "DJANGO_DEBUG": "false"}
        site.python("manage.py", "migrate", "--verbosity", "0", env={"DATABASE_URL": postgres})
        for name in args.names:
            _, setup = TRIALS[name]
            row = [name]
            for delay in delays:
                runs = [
                    scenarios.end_to_end(site, setup, postgres, args.mails, sinks[delay])
                    for _ in range(args.repeat)
                ]
                row.append(summary(runs))
            if args.drain:
                runs = [
                    scenarios.drain(site, setup, postgres, args.drain, sinks[0]) for _ in range(args.repeat)
                ]
                row.append(summary(runs))
            print(" | ".join(row), flush=True)
            rows.append(row)
    headers = ["trial", *(f"{delay} ms e2e" for delay in delays)] + (
        [f"drain {args.drain}"] if args.drain else []
    )
    print(f"\nmails/s, median of {args.repeat} (all runs), worker CPU ms per mail, busy cores")
    print(table(headers, rows))


def summary(runs):
    rates = [run["rate"] or 0 for run in runs]
    cpu = statistics.median(run["worker_cpu_ms_per_mail"] for run in runs)
    busy = statistics.median(run["machine_busy"] for run in runs)
    listed = "/".join(f"{rate:.0f}" for rate in rates)
    return f"{statistics.median(rates):.0f} ({listed}) {cpu:.1f}ms {busy:.0%}"


if __name__ == "__main__":
    sys.exit(main())
