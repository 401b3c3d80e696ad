"""Every combination of the template's choices bakes a site that is clean, safe and passes its own tests."""

import re
import secrets
import sys

import pytest
from choices import COMBINATIONS
from conftest import BIN, bake
from deployment import COMPOSE

LEFTOVER = re.compile(r"\{\{ *cookiecutter|\{%-? *(if|for|raw|endraw|endif)\b|cookiecutter\.")

EVERY_BAKE_HAS = [
    ".env",
    ".env.example",
    ".github/workflows/ci.yml",
    ".pre-commit-config.yaml",
    ".gitignore",
    "Dockerfile",
    "Makefile",
    "README.md",
    "compose.yaml",
    "config/celery.py",
    "config/settings.py",
    "config/urls.py",
    "config/wsgi.py",
    "config/asgi.py",
    "config/health.py",
    "acme_mail/delivery/management/commands/send_queued_mail.py",
    "acme_mail/delivery/management/commands/send_test_mail.py",
    "deploy/cron/acme_mail",
    "deploy/supervisor/acme_mail.conf",
    "manage.py",
    "pyproject.toml",
    "requirements.txt",
    "requirements-dev.txt",
]


def production(site):
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }


@pytest.mark.parametrize(
    "choices", COMBINATIONS, ids=lambda choices: "-".join(choices.values()) or "defaults"
)
def test_a_bake_is_clean_safe_and_passes_its_own_tests(tmp_path, choices):
    site = bake(tmp_path, **choices)

    leftovers = [
        str(path.relative_to(site.path))
        for path in site.path.rglob("*")
        if path.is_file() and LEFTOVER.search(path.read_text(errors="replace"))
    ]
    assert leftovers == [], "template text left in the baked site"
    site.run(sys.executable, "-m", "ruff", "check", ".")
    site.run(sys.executable, "-m", "ruff", "format", "--check", ".")
    site.manage("check", "--deploy", "--fail-level", "WARNING", env=production(site))
    site.manage("makemigrations", "--check", "--dry-run")
    site.run(sys.executable, "-m", "pytest", "-q", "-p", "no:randomly")
    site.run(COMPOSE, "--file", "compose.yaml", "config", "--quiet")
    site.run(COMPOSE, "config", "--quiet")  # with compose.override.yaml
    schemas = {"vendor.compose-spec": ["compose.yaml", "compose.override.yaml"]}
    schemas["vendor.github-workflows"] = [".github/workflows/ci.yml"]
    for schema, files in schemas.items():
        site.run(BIN / "check-jsonschema", "--builtin-schema", schema, *files)


def test_a_default_bake_has_every_file(tmp_path):
    site = bake(tmp_path)

    missing = [name for name in EVERY_BAKE_HAS if not (site.path / name).is_file()]
    assert missing == []


def test_every_bake_gets_its_own_secrets_and_keeps_them_out_of_git(tmp_path):
    first, second = bake(tmp_path / "one"), bake(tmp_path / "two")

    def secrets_of(site):
        lines = (site.path / ".env").read_text().splitlines()
        values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
        return {
            name: values[name] for name in ("DJANGO_SECRET_KEY", "RABBITMQ_PASSWORD", "POSTGRES_PASSWORD")
        }

    one, two = secrets_of(first), secrets_of(second)
    for name in one:
        assert len(one[name]) >= 32, f"{name} is too short"
        assert one[name] != two[name], f"{name} is the same in two bakes"
    assert "guest" not in (
        one["RABBITMQ_PASSWORD"],
        (first.path / ".env").read_text().split("RABBITMQ_USER=")[1],
    )
    assert ".env" in (first.path / ".gitignore").read_text().splitlines()
    assert (first.path / ".env").stat().st_mode & 0o077 == 0, ".env is readable by others"
    assert "DJANGO_SECRET_KEY=\n" in (first.path / ".env.example").read_text()
