"""The README's Benchmark tables are what the bench's report makes of the committed run
(docs/benchmark-results.json), not figures typed in."""

import importlib.util
import json
import sys

import pytest
from harness.bakery import TEMPLATE

BENCH = TEMPLATE / "scripts" / "bench"


@pytest.fixture(scope="module")
def bench_report():
    """scripts/bench/report.py (tests/site has a report.py of its own)."""
    sys.path[:0] = [str(BENCH), str(TEMPLATE / "scripts")]
    try:
        spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.path[:2]


def test_the_readme_benchmark_is_what_the_report_makes_of_the_committed_run(bench_report):
    if not bench_report.RESULTS.exists():
        pytest.fail(
            "docs/benchmark-results.json is missing: `make bench ARGS=--full` writes it, "
            "then `make bench-readme` writes the README's tables from it"
        )
    results = json.loads(bench_report.RESULTS.read_text())

    shown = bench_report.readme_block(bench_report.README.read_text())

    assert shown == bench_report.tables(results), "README.md's Benchmark block: run make bench-readme"


def test_bench_readme_rewrites_only_the_benchmark_block(bench_report, monkeypatch):
    readme = bench_report.README.read_text()
    before, _, after = readme.partition(bench_report.readme_block(readme))
    results = {"stand-in": True}
    monkeypatch.setattr(bench_report, "tables", lambda given: "the tables of " + json.dumps(given))

    rewritten = bench_report.with_tables(readme, results)

    assert rewritten == before + 'the tables of {"stand-in": true}' + after


def test_the_stage_table_keeps_each_stage_s_samples_apart(bench_report, tmp_path):
    """py-spy's raw stacks, sorted into stages: the report's figures are the samples' own."""
    worker = "acme_mail/delivery/sender.py"
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"thread (0x1);run (celery/app/trace.py:1);deliver ({worker}:89);send ({worker}:120) 50\n"
        f"thread (0x1);run (celery/app/trace.py:1);deliver ({worker}:99);sent (x/state.py:1) 43\n"
        f"thread (0x1);run (celery/app/trace.py:1);deliver ({worker}:68);take (x/state.py:1) 7\n"
    )
    stages = sys.modules["cpu_profile"].stages(raw)
    profile = [{"variant": "site", "stages": stages, "worker_cpu_ms_per_mail": 4.0, "rate": 200}]

    table = bench_report.stage_table(profile).splitlines()

    assert stages == {"take (state.take)": 0.07, "SMTP": 0.5, "status writes": 0.43}
    assert [line.split("  ")[-1].strip() for line in table[2:5]] == ["0.28 (7%)", "2.00 (50%)", "1.72 (43%)"]


def test_the_limits_show_only_in_a_run_that_measured_them(bench_report):
    """A run from before the limits were measured renders as it did; one with them shows their
    tables and targets."""
    empty = ["floors", "raw", "request", "end_to_end", "worker", "drain", "provider", "profile", "failures"]
    machine = {key: "?" for key in ("cpu", "cores", "python", "postgresql", "rabbitmq")}
    without = {**{key: [] for key in empty}, "machine": {**machine, "memory_gb": 1}}
    without.update(machine_busy=0.5, waiting_for_cpu=0.1)
    told = {"scenario": "rate", "variant": "site", "processes": 1, "told": True, "limit": 20, "mails": 200}
    told.update(arrived=200, rate=19.0, second_half_rate=19.2, throttled_per_1000=5, most_in_any_second=20)
    with_limits = {**without, "limits": [told]}
    without["targets"], with_limits["targets"] = (
        bench_report.targets(without),
        bench_report.targets(with_limits),
    )

    plain, measured = bench_report.tables(without), bench_report.tables(with_limits)

    assert "throttling" not in plain and "told the limit" not in plain
    assert "A server throttling at 20/s" in measured
    [target] = [line.split() for line in measured.splitlines() if "told the limit: accepted" in line]
    assert (target[0], target[-2:]) == ("yes", ["95", "%"])


def test_the_database_work_shows_per_part_and_for_the_whole_path_only_when_measured(bench_report):
    """The database's work per mail: a table by part, the whole path with PostgreSQL's own
    count beside it, and the targets (<= 2 write transactions, <= 4 rows written) judged on it."""
    empty = ["floors", "raw", "request", "end_to_end", "worker", "drain", "provider", "profile", "failures"]
    machine = {key: "?" for key in ("cpu", "cores", "python", "postgresql", "rabbitmq")}
    without = {**{key: [] for key in empty}, "machine": {**machine, "memory_gb": 1}}
    without.update(machine_busy=0.5, waiting_for_cpu=0.1)
    kinds = ("statements", "transactions", "write_transactions", "rows_written")
    parts = ("request", "handoff", "worker", "sweeper")
    run = {"variant": "site", "mails": 100, "recorded_sent": 100}
    run["per_mail"] = {part: dict.fromkeys(kinds, 0.5) for part in parts}
    run["path_per_mail"] = {
        "statements": 12,
        "transactions": 6.8,
        "write_transactions": 1.5,
        "rows_written": 7.2,
    }
    run["postgresql_per_mail"] = {"commits": 7.8, "rows_written": 7.2}
    measured = {**without, "database": [run]}
    without["targets"], measured["targets"] = bench_report.targets(without), bench_report.targets(measured)

    plain, shown = bench_report.tables(without), bench_report.tables(measured)

    assert "database's work" not in plain and "write transactions per mail" not in plain
    [path] = [line.split() for line in shown.splitlines() if line.startswith("this site  100")]
    assert path[3:] == ["12.00", "6.80", "1.50", "7.20", "7.80", "7.20"]
    targets = {
        " ".join(line.split()[1:-1]): line.split()[0] for line in shown.splitlines() if "per mail" in line
    }
    assert targets["whole path: <= 2 write transactions per mail"] == "yes"
    assert targets["whole path: <= 4 rows written per mail"] == "NO"
