"""Try worker settings against each other: end to end at 50 and 0 ms, and a backlog drain.

    python scripts/bench/tune.py [--repeat 3] [--mails 2000] [--drain 10000]
                                 [--measure end_to_end|worker_capacity] [NAME ...]

Each NAME is one of TRIALS below (all of them by default): the site's settings
with a few lines added, and a worker command line. Bakes a site into
build/bench/tune and prints the median of the repeats for every trial.
"""

import argparse
import contextlib
import json
import signal
import statistics
import sys

import scenarios
from baked import TEMPLATE, BakedSite
from harness.services import postgres_database, rabbitmq_vhost
from harness.smtp_catcher import free_port
from report import table
from scenarios import SITE, Setup
from sink import Sink


def trial(name, settings="", concurrency=20, pool="threads", processes=1, loglevel="INFO"):
    line = f"exec celery -A config worker --pool {pool} --concurrency {concurrency} --loglevel {loglevel}"
    command = ("sh", "-c", line + ' --hostname "$WORKER_NAME@%h"')
    return name, settings, Setup(name, f"config.settings_{name}", command, SITE.queue, processes)


TRIALS = dict(
    (name, (settings, setup))
    for name, settings, setup in [
        trial("shipped"),
        trial("t10", concurrency=10),
        trial("t40", concurrency=40),
        trial("warn", loglevel="WARNING"),
        trial("prefetch4", "CELERY_WORKER_PREFETCH_MULTIPLIER = 4"),
        trial("chunk1", "CELERY_EMAIL_CHUNK_SIZE = 1"),
        trial("chunk50", "CELERY_EMAIL_CHUNK_SIZE = 50"),
        trial("2x_t10", concurrency=10, processes=2),
        trial("2x_t20", processes=2),
        trial("prefork8", pool="prefork", concurrency=8),
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
    parser.add_argument(
        "--measure",
        choices=["end_to_end", "worker_capacity"],
        default="end_to_end",
        help="at each delay: end to end from send_mail(), or the workers alone on tasks waiting in RabbitMQ",
    )
    parser.add_argument("names", nargs="*", default=list(TRIALS))
    args = parser.parse_args()
    # Stopped with SIGTERM, still remove the virtual host and the database and stop the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    delays = [int(delay) for delay in args.delays.split(",") if delay]

    site = BakedSite.bake(TEMPLATE / "build" / "bench" / "tune")
    for name in args.names:
        settings, _ = TRIALS[name]
        text = f"from .settings import *  # noqa: F403\n{settings.replace('; ', chr(10))}\n"
        (site.path / "config" / f"settings_{name}.py").write_text(text)
    runs = {(name, kind): [] for name in args.names for kind in [*delays, "drain"]}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(rabbitmq_vhost("bench"))
        postgres = stack.enter_context(postgres_database("bench"))
        sinks = {delay: stack.enter_context(Sink(free_port(), delay)) for delay in {*delays, 0}}
        site.env = {"CELERY_BROKER_URL": broker, "DJANGO_DEBUG": "false"}
        site.python("manage.py", "migrate", "--verbosity", "0", env={"DATABASE_URL": postgres})
        # Round after round, every trial once per round: a change in the machine's load
        # then spreads over all trials instead of falling on one.
        for round_ in range(args.repeat):
            for name in args.names:
                _, setup = TRIALS[name]
                for delay in delays:
                    measure = getattr(scenarios, args.measure)
                    run = measure(site, setup, postgres, args.mails, sinks[delay])
                    runs[name, delay].append(run)
                    print(f"round {round_ + 1}: {name}, {delay} ms: {brief(run)}", flush=True)
                if args.drain:
                    run = scenarios.drain(site, setup, postgres, args.drain, sinks[0])
                    runs[name, "drain"].append(run)
                    print(f"round {round_ + 1}: {name}, drain: {brief(run)}", flush=True)
    kinds = [*delays, "drain"] if args.drain else delays
    rows = [[name, *(summary(runs[name, kind]) for kind in kinds)] for name in args.names]
    headers = ["trial", *(f"{args.measure}, {delay} ms, {args.mails}" for delay in delays)]
    headers += [f"drain {args.drain}, 0 ms"] if args.drain else []
    print(f"\nmails/s: median of {args.repeat} (every run); worker CPU ms per mail; cores busy")
    print(table(headers, rows))
    out = TEMPLATE / "build" / "bench" / "tune.json"
    out.write_text(
        json.dumps([{"trial": name, "kind": kind, "runs": found} for (name, kind), found in runs.items()])
    )


def brief(run):
    sent = f", web sent {run['send_rate']:.0f}/s" if "send_rate" in run else ""
    return (
        f"{run['rate'] or 0:.0f} mails/s{sent}, worker CPU {run['worker_cpu_ms_per_mail']:.1f} ms/mail, "
        f"busy {run['machine_busy']:.0%}, waiting for CPU {run['waiting_for_cpu'] or 0:.0%}"
    )


def summary(runs):
    rates = [run["rate"] or 0 for run in runs]
    cpu = statistics.median(run["worker_cpu_ms_per_mail"] for run in runs)
    busy = statistics.median(run["machine_busy"] for run in runs)
    listed = "/".join(f"{rate:.0f}" for rate in rates)
    return f"{statistics.median(rates):.0f} ({listed}) {cpu:.1f}ms {busy:.0%}"


if __name__ == "__main__":
    sys.exit(main())
