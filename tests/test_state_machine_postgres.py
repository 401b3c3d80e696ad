"""The site's model-based test of its mail state machine (tests/test_state_machine.py), on
PostgreSQL: the bake tests run it on SQLite with the rest of the site's suite."""

import re
import sys

from harness.baked_site import bake
from harness.figures import report


def test_the_mail_state_machine_keeps_its_promises_on_postgresql(tmp_path, postgres):
    site = bake(tmp_path)

    result = site.run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "tests/test_state_machine.py",
        env={"DATABASE_URL": postgres},
        timeout=540,  # within pytest-timeout's 600 s
    )

    [figures] = re.findall(r"mail state machine: .*", result.stdout)
    assert figures.endswith("on postgresql"), figures
    report(figures)
