"""A test that lacks what it needs fails, unless the user asked by name to skip it; the run's
summary then says how many were skipped and why."""

import os
import subprocess
import sys

from harness.bakery import TEMPLATE

LACKS_CHROMIUM = """
from harness.needs import cannot_run

def test_the_admin_pages():
    cannot_run("Chromium is not installed", "chromium")

def test_something_else():
    pass
"""


def run(tmp_path, **env):
    (tmp_path / "test_lacking.py").write_text(LACKS_CHROMIUM)
    environment = {
        **{name: value for name, value in os.environ.items() if name not in ("CI", "SKIP")},
        "PYTHONPATH": f"{TEMPLATE / 'tests'}{os.pathsep}{TEMPLATE / 'tests' / 'site'}",
        "TEST_FIGURES": str(tmp_path / "figures.txt"),
        **env,
    }
    pytest = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-p", "no:randomly"]
    return subprocess.run(
        [*pytest, "test_lacking.py"], cwd=tmp_path, env=environment, capture_output=True, text=True
    )


def test_a_test_lacking_what_it_needs_fails_and_names_the_skip(tmp_path):
    result = run(tmp_path)

    assert result.returncode == 1, result.stdout
    assert "Chromium is not installed (scripts/test-needs provides it; or SKIP=chromium make test)" in (
        result.stdout
    )
    assert "1 failed, 1 passed" in result.stdout


def test_a_skip_asked_by_name_is_counted_with_its_reason(tmp_path):
    result = run(tmp_path, SKIP="containers,chromium")

    assert result.returncode == 0, result.stdout
    assert "1 skipped: SKIP=chromium: Chromium is not installed" in result.stdout
    assert "1 tests skipped (SKIP asked for containers,chromium)" in result.stdout


def test_ci_never_skips(tmp_path):
    result = run(tmp_path, SKIP="chromium", CI="true")

    assert result.returncode == 1, result.stdout
