"""Figures measured during a test run, gathered in one file and printed at the end of the run."""

import os
from pathlib import Path

from .bakery import TEMPLATE

# Where measured figures gather during a run (another file for a run inside a test).
FIGURES = Path(os.environ.get("TEST_FIGURES") or TEMPLATE / "build" / "test-figures.txt")


def report(line):
    """Print a measured figure at the end of the test run (from any xdist worker)."""
    with FIGURES.open("a") as figures:
        figures.write(line + "\n")


def start():
    """An empty figures file for a new run."""
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text("")


def reported():
    """The figures reported so far, sorted."""
    return sorted(FIGURES.read_text().splitlines()) if FIGURES.exists() else []
