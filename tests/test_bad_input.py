"""Bad answers are refused with one line naming the field and the rule, and leave no folder behind."""

import subprocess
import sys

import pytest
from harness.bakery import TEMPLATE, own_config

BAD_ANSWERS = {
    "slug with a dash": ({"project_slug": "acme-mail"}, "project_slug", "lowercase Python identifier"),
    "slug with capitals": ({"project_slug": "AcmeMail"}, "project_slug", "lowercase Python identifier"),
    "slug starting with a digit": ({"project_slug": "1mail"}, "project_slug", "lowercase Python identifier"),
    "slug starting with an underscore": (
        {"project_slug": "_mail"},
        "project_slug",
        "lowercase Python identifier",
    ),
    "slug that is a keyword": ({"project_slug": "class"}, "project_slug", "lowercase Python identifier"),
    "empty slug": ({"project_slug": ""}, "project_slug", "empty"),
    "slug shadowing django": ({"project_slug": "django"}, "project_slug", "shadow"),
    "slug shadowing celery": ({"project_slug": "celery"}, "project_slug", "shadow"),
    "slug shadowing email": ({"project_slug": "email"}, "project_slug", "shadow"),
    "slug shadowing config": ({"project_slug": "config"}, "project_slug", "shadow"),
    "slug shadowing post_office": ({"project_slug": "post_office"}, "project_slug", "shadow"),
    "slug shadowing test": ({"project_slug": "test"}, "project_slug", "shadow"),
    "slug shadowing environ": ({"project_slug": "environ"}, "project_slug", "shadow"),
    "slug shadowing kombu": ({"project_slug": "kombu"}, "project_slug", "shadow"),
    "slug shadowing logging": ({"project_slug": "logging"}, "project_slug", "shadow"),
    "slug shadowing flower": ({"project_slug": "flower"}, "project_slug", "shadow"),
    "author_email without @": ({"author_email": "someone.example.com"}, "author_email", "not an email"),
    "author_email with a name": ({"author_email": "Ann <ann@example.com>"}, "author_email", "not an email"),
    "sender without domain": (
        {"default_from_email": "Acme <noreply@>"},
        "default_from_email",
        "not an email",
    ),
    "sender with a space": (
        {"default_from_email": "no reply@example.com"},
        "default_from_email",
        "not an email",
    ),
    "domain with a scheme": ({"domain_name": "https://example.com"}, "domain_name", "no scheme"),
    "domain with a path": ({"domain_name": "example.com/mail"}, "domain_name", "no scheme, path"),
    "domain with a space": ({"domain_name": "example .com"}, "domain_name", "space"),
    "unknown time zone": ({"time_zone": "Mars/Olympus"}, "time_zone", "IANA"),
    # The README's rules for names: each character it names, each length limit, the empty name.
    "name with a double quote": ({"project_name": 'Acme "Mail"'}, "project_name", "double quote"),
    "name with a backslash": ({"project_name": "Acme\\Mail"}, "project_name", "backslash"),
    "name with a dollar": ({"project_name": "Acme $Mail"}, "project_name", "$"),
    "name with a backtick": ({"project_name": "Acme `Mail`"}, "project_name", "`"),
    "name of 81 characters": (
        {"project_name": "M" * 81, "project_slug": "m"},
        "project_name",
        "keep it to 80",
    ),
    "slug of 61 characters": ({"project_slug": "m" * 61}, "project_slug", "keep it to 60"),
    "empty name": ({"project_name": "", "project_slug": "acme"}, "project_name", "empty"),
    "blank name": ({"project_name": "   ", "project_slug": "acme"}, "project_name", "empty"),
}


@pytest.mark.parametrize("answers, field, rule", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_is_refused_clearly_and_leaves_nothing(tmp_path, answers, field, rule):
    # The command line users type, with a config of its own (a ~/.cookiecutterrc changes nothing).
    (home := tmp_path / "home").mkdir()
    (output := tmp_path / "output").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", own_config(home)]
        + ["--output-dir", output, TEMPLATE]
        + [f"{name}={value}" for name, value in answers.items()],
        capture_output=True,
        text=True,
    )

    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"ERROR: {field} ")]
    assert len(errors) == 1, result.stderr
    assert rule in errors[0]
    assert list(output.iterdir()) == []
