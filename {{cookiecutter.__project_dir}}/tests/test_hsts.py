"""HSTS: short and for this host only by default; preload only with a year and subdomains."""

import os
import subprocess
import sys

READ = (
    "import django; django.setup(); from django.conf import settings as s;"
    "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
)


def settings_under(**env):
    """The HSTS settings of a process started with this environment (and no DEBUG)."""
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "false", **env}
    return subprocess.run(  # noqa: S603 (this interpreter, fixed code)
        [sys.executable, "-c", READ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_hsts_asks_no_preload_and_no_subdomains_by_default():
    assert settings_under().stdout.split() == ["60", "False", "False"]


def test_preload_without_a_year_and_subdomains_is_refused_naming_both():
    refused = settings_under(DJANGO_SECURE_HSTS_PRELOAD="true")

    assert refused.returncode != 0
    assert "DJANGO_SECURE_HSTS_PRELOAD needs DJANGO_SECURE_HSTS_SECONDS of a year" in refused.stderr
    year = settings_under(
        DJANGO_SECURE_HSTS_PRELOAD="true",
        DJANGO_SECURE_HSTS_SECONDS="31536000",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
    )
    assert year.stdout.split() == ["31536000", "True", "True"]
