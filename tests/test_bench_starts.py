"""`make bench` and `tune.py` start: their command lines and every module of the template's they
import load with the template's requirements; make bench's own (matplotlib, py-spy, trustme) are
imported where they are used. A helper renamed in tests/harness/ once broke `make bench` at its
first import while every test stayed green."""

import os
import subprocess
import sys

import pytest
from harness.bakery import TEMPLATE

BENCH = TEMPLATE / "scripts" / "bench"


@pytest.mark.parametrize("script", ["bench.py", "tune.py"])
def test_the_benchmarks_command_lines_start(script):
    env = {**os.environ, "PYTHONPATH": f"{TEMPLATE / 'scripts'}:{TEMPLATE / 'tests'}"}
    started = subprocess.run(
        [sys.executable, BENCH / script, "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert started.returncode == 0, started.stderr
    assert "usage:" in started.stdout
