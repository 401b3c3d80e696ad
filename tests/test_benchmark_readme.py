"""The README's Benchmark tables are what the bench's report makes of the committed run
(docs/benchmark-results.json), not figures typed in."""

import importlib.util
import json
import sys

import pytest
from conftest import TEMPLATE

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
    worker = "acme_mail/delivery/worker.py"
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
