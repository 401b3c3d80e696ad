"""The benchmark's verdicts, tables and chart, from the figures in results.json; run as a
script (`make bench-readme`), it writes the README's Benchmark block from the committed run."""

import json
import re
import sys
from pathlib import Path

from scenarios import BEFORE

TEMPLATE = Path(__file__).resolve().parents[2]
README = TEMPLATE / "README.md"
# The data of the run the README shows: `make bench ARGS=--full` writes it.
RESULTS = TEMPLATE / "docs" / "benchmark-results.json"
BLOCK = re.compile(r"(<!-- benchmark:[^\n]*-->\n```\n)(.*?)(\n```\n<!-- /benchmark -->)", re.DOTALL)

VARIANT_NAMES = {
    "sync": "synchronous SMTP in the request",
    "classic": "classic: post_office 'now' -> CeleryEmailBackend -> prefork x2",
    "site": "this site: deploy/bin/worker, its settings",
    "site, before": f"this site before ({BEFORE}): a mail read and taken alone",
    "site, 1 process": "this site, 1 worker process of 20 threads",
    "site, 2 processes": "this site, 2 worker processes of 10 threads",
}


def find(rows, **match):
    return [row for row in rows if all(row.get(key) == value for key, value in match.items())]


def worst(rows, key, pick=min):
    values = [row[key] for row in rows]
    if not values:
        return None
    if any(value is None for value in values):
        return float("nan")
    return pick(values)


def targets(results):
    """[(target, measured, holds)]; holds is None when the run did not measure it. Each
    ratio comes from figures of this one run."""
    request, e2e, workers = results["request"], results["end_to_end"], results["worker"]
    site_p50_pg = worst(find(request, variant="site", database="postgres"), "p50_ms", max)
    site_p99 = worst(find(request, variant="site"), "p99_ms", max)
    sync_50 = worst(find(request, variant="sync", delay_ms=50), "p50_ms", max)
    raw_50 = worst(find(results["raw"], delay_ms=50, connections=50), "rate", max)
    sizes = sorted({row["mails"] for row in find(e2e, variant="classic", delay_ms=50)})
    same = sizes[-1] if sizes else None
    classic_50 = worst(find(e2e, variant="classic", delay_ms=50, mails=same), "rate")
    site_50_same = worst(find(e2e, variant="site", delay_ms=50, mails=same), "rate")
    site_50 = worst(find(e2e, variant="site", delay_ms=50), "rate")
    classic_worker, site_worker = (find(workers, variant=v, delay_ms=0) for v in ("classic", "site"))
    provider = {v: find(results.get("provider", []), variant=v) for v in ("classic", "site")}
    drains = sorted(results["drain"], key=lambda row: row["mails"])
    rss = max(
        (max(row["sweeper_peak_rss_mb"] or 0, row["worker_peak_rss_mb"]) for row in drains), default=None
    )
    scaling = None
    if len(drains) >= 2 and drains[0]["seconds"] and drains[-1]["seconds"]:
        scaling = drains[-1]["seconds"] / drains[0]["seconds"]
    small, large = (f"{drains[0]['mails']:,}", f"{drains[-1]['mails']:,}") if drains else ("?", "?")

    def ratio(a, b):
        return a / b if a and b else None

    def percent(a, b):
        return ratio(a, b) and ratio(a, b) * 100

    return [
        check(
            f"50 ms server: >= 8x the classic recipe end to end ({same} mails)",
            ratio(site_50_same, classic_50),
            "{:.1f}x",
            lambda v: v >= 8,
        ),
        check(
            "50 ms server: >= 35 % of raw SMTP capacity over 50 connections",
            percent(site_50, raw_50),
            "{:.0f} %",
            lambda v: v >= 35,
        ),
        check(
            "0 ms server, the workers alone: >= 1.5x the classic worker",
            ratio(worst(site_worker, "rate"), worst(classic_worker, "rate", max)),
            "{:.2f}x",
            lambda v: v >= 1.5,
        ),
        check(
            "0 ms server: worker CPU per mail <= 1.0x the classic worker's",
            ratio(
                worst(site_worker, "worker_cpu_ms_per_mail", max),
                worst(classic_worker, "worker_cpu_ms_per_mail"),
            ),
            "{:.2f}x",
            lambda v: v <= 1.0,
        ),
        check(
            "provider-like server: >= 10x the classic recipe end to end",
            ratio(worst(provider["site"], "rate"), worst(provider["classic"], "rate", max)),
            "{:.1f}x",
            lambda v: v >= 10,
        ),
        check(
            "provider-like server: < 100 connections opened per 1000 mails",
            worst(provider["site"], "connections_per_1000", max),
            "{:.0f}",
            lambda v: v < 100,
        ),
        check(
            "request p50 on PostgreSQL >= 30x faster than sync SMTP to a 50 ms server",
            ratio(sync_50, site_p50_pg),
            "{:.0f}x",
            lambda v: v >= 30,
        ),
        check("request p99 <= 15 ms", site_p99, "{:.2f} ms", lambda v: v <= 15),
        check(f"{large} backlog: peak RSS < 300 MB per process", rss, "{:.0f} MB", lambda v: v < 300),
        check(f"drain time({large}) / time({small}) <= 12", scaling, "{:.1f}", lambda v: v <= 12),
        *(limits_targets(results["limits"]) if "limits" in results else []),
        *(database_targets(results["database"]) if results.get("database") else []),
    ]


def database_targets(runs):
    """The database's work per mail on the site's whole path, send_mail() to sent."""
    site = find(runs, variant="site")
    path = site[0]["path_per_mail"] if site else {}
    return [
        check(
            "whole path: <= 2 write transactions per mail",
            path.get("write_transactions"),
            "{:.2f}",
            lambda v: v <= 2,
        ),
        check("whole path: <= 4 rows written per mail", path.get("rows_written"), "{:.2f}", lambda v: v <= 4),
    ]


def limits_targets(rows):
    """The provider's limits: the site's worst run of each kind, one process or two."""
    # The site's own variant and the other count of processes (2 in runs before one per core).
    variants = ("site", "site, 1 process", "site, 2 processes")
    told = [row for variant in variants for row in find(rows, scenario="rate", variant=variant, told=True)]
    not_told = [
        row for variant in variants for row in find(rows, scenario="rate", variant=variant, told=False)
    ]
    newsletter = find(rows, scenario="newsletter", variant="site")
    return [
        check(
            "told the limit: accepted >= 95 % of it, 1 and 2 processes",
            worst(with_percent(told), "percent"),
            "{:.0f} %",
            lambda v: v >= 95,
        ),
        check(
            "told the limit: throttled <= 1 % of mails",
            worst(told, "throttled_per_1000", max),
            "{:.0f} per 1000",
            lambda v: v <= 10,
        ),
        check(
            "not told: throttled <= 10 % of mails",
            worst(not_told, "throttled_per_1000", max),
            "{:.0f} per 1000",
            lambda v: v <= 100,
        ),
        check(
            "not told: accepted >= 80 % of the provider's rate",
            worst(with_percent(not_told), "percent"),
            "{:.0f} %",
            lambda v: v >= 80,
        ),
        check(
            "newsletter at the limit: transactional p99 <= 1 s to the server",
            worst(newsletter, "p99_s", max),
            "{:.2f} s",
            lambda v: v <= 1,
        ),
    ]


def check(name, value, form, rule):
    if value is None:
        return {"target": name, "measured": "not measured", "holds": None}
    if value != value:  # NaN: a run that did not finish
        return {"target": name, "measured": "did not finish", "holds": False}
    return {"target": name, "measured": form.format(value), "holds": bool(rule(value))}


def tables(results):
    """The printed report, as text."""
    machine = results["machine"]
    out = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']:.0f} GB; "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}, RabbitMQ {machine['rabbitmq']}",
        f"During the run the cores were busy {results['machine_busy']:.0%} of the time, other work on the "
        f"machine included; something waited for a core {share(results['waiting_for_cpu'])} of the time.",
        "",
        "What a durable write waits for on this machine, measured bare (ms)",
        table(
            ["operation", "times", "p50", "p99"],
            [
                [row["what"], row["count"], f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}"]
                for row in results["floors"]
            ],
        ),
        "",
        "Raw SMTP capacity: smtplib straight to the SMTP server",
        table(
            ["server delay", "connections", "mails", "mails/s", "CPU ms/mail client+server"],
            [
                [
                    f"{row['delay_ms']} ms",
                    row["connections"],
                    row["mails"],
                    f"{row['rate']:.0f}",
                    f"{row['client_cpu_ms_per_mail']:.1f}+{row['server_cpu_ms_per_mail']:.1f}",
                ]
                for row in results["raw"]
            ],
        ),
        "",
        "Request side: what one send_mail() costs the request, commit included (ms)",
        table(
            ["variant", "database", "server", "sends", "p50", "p99", "mean"],
            [
                [
                    VARIANT_NAMES[row["variant"]],
                    row["database"] if row["variant"] != "sync" else "-",
                    f"{row['delay_ms']} ms" if row["variant"] == "sync" else "-",
                    row["mails"],
                    f"{row['p50_ms']:.2f}",
                    f"{row['p99_ms']:.2f}",
                    f"{row['mean_ms']:.2f}",
                ]
                for row in results["request"]
            ],
        ),
        "",
        "End to end on PostgreSQL: first send_mail() to the last mail accepted by the server; "
        f"{senders(results)} processes call send_mail() at once, like the web server's workers",
        table(
            [*RUN_HEADERS, "sent by web/s", "recorded sent", "CPU ms/mail web+worker+server", *LOAD_HEADERS],
            [
                [
                    *run_cells(row),
                    f"{row['send_rate']:.0f}",
                    row["recorded_sent"],
                    f"{row['sender_cpu_ms_per_mail']:.1f}+{row['worker_cpu_ms_per_mail']:.1f}"
                    f"+{row['server_cpu_ms_per_mail']:.1f}",
                    *load_cells(row),
                ]
                for row in results["end_to_end"]
            ],
        ),
        "",
        "The workers alone: tasks wait in RabbitMQ, one mail each as send_mail() published them; "
        "then the worker starts. First to last mail accepted",
        table(
            [*RUN_HEADERS, "CPU ms/mail worker+server", *LOAD_HEADERS],
            [
                [
                    *run_cells(row),
                    f"{row['worker_cpu_ms_per_mail']:.1f}+{row['server_cpu_ms_per_mail']:.1f}",
                    *load_cells(row),
                ]
                for row in results["worker"]
            ],
        ),
        "",
        "Backlog drain on PostgreSQL: `manage.py send_queued_mail` and the site's worker, "
        "from a backlog of due mails to all recorded sent",
        table(
            [
                "server",
                "mails",
                "seconds",
                "mails/s",
                "sweeper s",
                "sweeper RSS MB",
                "worker RSS MB",
                "worker CPU ms/mail",
                "busy/wait",
            ],
            [
                [
                    f"{row['delay_ms']} ms",
                    row["mails"],
                    number(row["seconds"], "{:.1f}"),
                    number(row["rate"], "{:.0f}"),
                    number(row["sweeper_seconds"], "{:.1f}"),
                    number(row["sweeper_peak_rss_mb"], "{:.0f}"),
                    f"{row['worker_peak_rss_mb']:.0f}",
                    f"{row['worker_cpu_ms_per_mail']:.1f}",
                    f"{row['machine_busy']:.0%}/{share(row['waiting_for_cpu'])}",
                ]
                for row in results["drain"]
            ],
        ),
        "",
        "Where the site's worker's CPU goes (0 ms server, the workers alone): CPU ms per mail by stage, "
        "the worker's CPU per mail split as py-spy's samples of the thread holding the GIL",
        stage_table(results.get("profile", [])),
        "",
        *database_tables(results.get("database", [])),
        "A provider-like server (STARTTLS, AUTH, 20 ms a command, 100 ms more on DATA, at most 20 "
        "connections per client), end to end on PostgreSQL",
        table(
            ["variant", "mails", "seconds", "mails/s", "connections per 1000 mails", *LOAD_HEADERS],
            [
                [
                    VARIANT_NAMES[row["variant"]].split(":")[0],
                    row["mails"],
                    number(row["seconds"], "{:.1f}"),
                    number(row["rate"], "{:.0f}"),
                    f"{row['connections_per_1000']:.0f}",
                    *load_cells(row),
                ]
                for row in results.get("provider", [])
            ],
        ),
        "",
        *(limits_tables(results["limits"]) if "limits" in results else []),
        *(f"FAILED: {row['kind']}: {row['what']}: {row['error']}" for row in results["failures"]),
        "Targets",
        table(
            ["holds", "target", "measured"],
            [
                [{True: "yes", False: "NO", None: "-"}[row["holds"]], row["target"], row["measured"]]
                for row in results["targets"]
            ],
        ),
    ]
    return "\n".join(out)


def database_tables(runs):
    """The database's work per mail: by role as the site's processes counted it, and the whole
    path as they and PostgreSQL counted it."""
    if not runs:
        return []
    kinds = ["statements", "transactions", "write_transactions", "rows_written"]
    headers = ["variant", "part", *(kind.replace("_", " ") for kind in kinds)]
    rows = [
        [
            VARIANT_NAMES[run["variant"]].split(":")[0],
            role,
            *(f"{run['per_mail'][role][kind]:.2f}" for kind in kinds),
        ]
        for run in runs
        for role in ("request", "handoff", "worker", "sweeper")
    ]
    path = [
        [
            VARIANT_NAMES[run["variant"]].split(":")[0],
            run["mails"],
            *(f"{run['path_per_mail'][kind]:.2f}" for kind in kinds),
            f"{run['postgresql_per_mail']['commits']:.2f}",
            f"{run['postgresql_per_mail']['rows_written']:.2f}",
        ]
        for run in runs
    ]
    return [
        "The database's work per mail, 0 ms server: what each part asked of PostgreSQL, counted in "
        "its processes (the sweeper: one run handing out a backlog of as many mails)",
        table(headers, rows),
        "",
        "The whole path per mail, send_mail() to sent (request + hand-off + worker), as the site's "
        "processes counted it and as PostgreSQL did (pg_stat_database: commits of reads, connection set-up "
        "and autovacuum included)",
        table(
            [
                "variant",
                "mails",
                *(kind.replace("_", " ") for kind in kinds),
                "PostgreSQL commits",
                "PostgreSQL rows written",
            ],
            path,
        ),
        "",
    ]


def with_percent(rows):
    """The rows, each with its accepted rate as a percentage of the server's limit."""
    return [{**row, "percent": row["rate"] and row["rate"] * 100 / row["limit"]} for row in rows]


def limits_tables(rows):
    """The provider's limits, as tables; a run without them shows nothing."""
    return [
        f"A server throttling at {first(rows, 'rate', 'limit')}/s across connections as SES does (454 "
        "beyond), end to end on PostgreSQL; told: MAIL_RATE_LIMIT set to it",
        table(
            [
                "variant",
                "told",
                "mails",
                "arrived",
                "accepted/s",
                "of the limit",
                "second half /s",
                "throttled per 1000",
                "most in 1 s",
            ],
            [
                [
                    VARIANT_NAMES[row["variant"]].split(":")[0],
                    "yes" if row["told"] else "no",
                    row["mails"],
                    row["arrived"],
                    number(row["rate"], "{:.1f}"),
                    number(row["rate"] and row["rate"] * 100 / row["limit"], "{:.0f} %"),
                    number(row["second_half_rate"], "{:.1f}"),
                    f"{row['throttled_per_1000']:.0f}",
                    row["most_in_any_second"],
                ]
                for row in find(rows, scenario="rate")
            ],
        ),
        "",
        f"A newsletter (Precedence: bulk) to a server taking {first(rows, 'newsletter', 'limit')}/s while a "
        "transactional mail goes every 0.5 s: its time from send_mail() to the server (s)",
        table(
            [
                "variant",
                "told",
                "bulk",
                "bulk left at the last",
                "transactional",
                "not arrived",
                "p50",
                "p99",
                "throttled per 1000",
            ],
            [
                [
                    VARIANT_NAMES[row["variant"]].split(":")[0],
                    "yes" if row["told"] else "no",
                    row["mails"],
                    row["bulk_left_at_last_transactional"],
                    row["transactional"],
                    row["transactional_missing"],
                    waited(row, "p50_s"),
                    waited(row, "p99_s"),
                    f"{row['throttled_per_1000']:.0f}",
                ]
                for row in find(rows, scenario="newsletter")
            ],
        ),
        "",
    ]


def limits_report(results):
    """The printed report of a run of the limits alone: their tables, failures and targets."""
    return "\n".join(
        [
            *limits_tables(results["limits"]),
            *(f"FAILED: {row['kind']}: {row['what']}: {row['error']}" for row in results["failures"]),
            "Targets",
            table(
                ["holds", "target", "measured"],
                [
                    [{True: "yes", False: "NO", None: "-"}[row["holds"]], row["target"], row["measured"]]
                    for row in limits_targets(results["limits"])
                ],
            ),
        ]
    )


def first(rows, scenario, key):
    return next((row[key] for row in find(rows, scenario=scenario)), "?")


def waited(row, key):
    """A wait; one as long as the run's window is a mail that did not arrive in it."""
    return f"> {row['window_seconds']:.0f}" if row[key] >= row["window_seconds"] else f"{row[key]:.2f}"


def stage_table(runs):
    runs = [run for run in runs if run["stages"]]
    names = list(dict.fromkeys(stage for run in runs for stage in run["stages"]))

    def cell(run, name):
        part = run["stages"].get(name, 0)
        return f"{part * run['worker_cpu_ms_per_mail']:.2f} ({part:.0%})"

    rows = [[name, *(cell(run, name) for run in runs)] for name in names]
    rows.append(["worker CPU ms per mail", *(f"{run['worker_cpu_ms_per_mail']:.2f}" for run in runs)])
    rows.append(["mails/s", *(number(run["rate"], "{:.0f}") for run in runs)])
    return table(["stage", *(VARIANT_NAMES[run["variant"]] for run in runs)], rows)


RUN_HEADERS = ["variant", "server", "mails", "seconds", "mails/s"]
LOAD_HEADERS = ["worker RSS MB", "busy/wait"]


def run_cells(row):
    return [
        VARIANT_NAMES[row["variant"]].split(":")[0],
        f"{row['delay_ms']} ms",
        row["mails"],
        number(row["seconds"], "{:.1f}"),
        number(row["rate"], "{:.0f}"),
    ]


def load_cells(row):
    return [f"{row['worker_peak_rss_mb']:.0f}", f"{row['machine_busy']:.0%}/{share(row['waiting_for_cpu'])}"]


def senders(results):
    return results["end_to_end"][0]["senders"] if results["end_to_end"] else "-"


def share(value):
    return "?" if value is None else f"{value:.0%}"


def number(value, form):
    return "-" if value is None else form.format(value)


def table(headers, rows):
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def chart(results, path):
    """Two panels: the request's cost per mail, and end-to-end throughput against raw capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    rows = results["request"]
    labels = [
        f"{row['variant']}, {row['delay_ms']} ms server"
        if row["variant"] == "sync"
        else f"{row['variant']}, {row['database']}"
        for row in rows
    ]
    positions = range(len(rows))
    left.barh([p + 0.2 for p in positions], [row["p50_ms"] for row in rows], 0.4, label="p50")
    left.barh([p - 0.2 for p in positions], [row["p99_ms"] for row in rows], 0.4, label="p99")
    left.set_yticks(list(positions), labels)
    left.invert_yaxis()
    left.set_xscale("log")
    ticks = [0.5, 1, 2, 5, 10, 20, 50, 100, 200]
    left.set_xticks(ticks, [f"{tick:g}" for tick in ticks], minor=False)
    left.set_xticks([], minor=True)
    left.set_xlabel("ms per send_mail(), log scale")
    left.set_title("What the request pays")
    left.legend()

    delays = sorted({row["delay_ms"] for row in results["end_to_end"]})
    series = [("raw SMTP (best)", None), ("classic", "classic"), ("this site", "site")]
    width = 0.8 / len(series)
    for index, (label, variant) in enumerate(series):
        heights = []
        for delay in delays:
            if variant is None:
                heights.append(worst(find(results["raw"], delay_ms=delay), "rate", max) or 0)
            else:
                heights.append(
                    worst(find(results["end_to_end"], variant=variant, delay_ms=delay), "rate") or 0
                )
        bars = right.bar([d + (index - 1) * width for d in range(len(delays))], heights, width, label=label)
        right.bar_label(bars, fmt="%.0f", fontsize=8)
    right.set_xticks(range(len(delays)), [f"{delay} ms SMTP server" for delay in delays])
    right.set_ylabel("mails/s, first send to last accepted")
    right.set_title("End to end (worst of the sizes run)")
    right.legend()
    figure.suptitle(f"{results['machine']['cores']} cores, {results['machine']['cpu']}", fontsize=9)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def readme_block(readme_text):
    """The tables the README shows, as written there."""
    found = BLOCK.search(readme_text)
    if not found:
        raise SystemExit("README.md has no <!-- benchmark: --> block")
    return found[2]


def with_tables(readme_text, results):
    """The README with its Benchmark block rewritten from `results`."""
    readme_block(readme_text)  # it has one
    return BLOCK.sub(lambda found: found[1] + tables(results) + found[3], readme_text, count=1)


def main():
    if not RESULTS.exists():
        sys.exit(f"No {RESULTS.relative_to(TEMPLATE)}: run `make bench ARGS=--full` first.")
    results = json.loads(RESULTS.read_text())
    README.write_text(with_tables(README.read_text(), results))
    print(f"README.md: the Benchmark block rewritten from {RESULTS.relative_to(TEMPLATE)}.")


if __name__ == "__main__":
    main()
