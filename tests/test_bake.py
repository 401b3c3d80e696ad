"""Sensible answers, ordinary and odd, bake a site that is clean, safe and passes its own tests."""

import fnmatch
import json
import re
import secrets
import stat
import subprocess
import sys

import pytest
from harness.baked_site import BIN, bake, env_file
from harness.bakery import SITE_TEMPLATE, TEMPLATE
from harness.compose_site import COMPOSE

LEFTOVER = re.compile(r"\{\{ *cookiecutter|cookiecutter\.|\{%-? *(raw|endraw)\b")
# The only template text a .py file of the site may hold: the site's names.
NAMES = re.compile(r"\{\{ cookiecutter\.(project_slug|project_name) \}\}")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)

ANSWERS = {
    "defaults": {},
    "long non-ASCII names": {
        "project_name": "Bäckerei Müller & Söhne Großhandel",
        "domain_name": "mail.baeckerei-mueller-und-soehne.example",
        "default_from_email": (
            "Bäckerei Müller & Söhne Großhandel <noreply@mail.baeckerei-mueller-und-soehne.example>"
        ),
        "time_zone": "America/Argentina/ComodRivadavia",
        "email_service": "postmark",
    },
    "the longest names, a slug after tests": {  # 80 and 60 characters
        "project_name": "Zoë's Überlange Versandabteilung für Rechnungen, Mahnungen und Newsletter — GmbH",
        "project_slug": "zz_versand_" + "x" * 49,
        "description": "Mails für alle \N{EN DASH} with an en dash, ✉ and 'quotes'",
        "author_name": "Zoë O'Brien-Łukasiewicz",
        "domain_name": "xn--bcher-kva.example",
        "default_from_email": "billing@xn--bcher-kva.example",
        "time_zone": "Pacific/Chatham",
        "email_service": "amazon_ses",
    },
}

EVERY_BAKE_HAS = [
    ".env",
    ".env.example",
    ".github/workflows/ci.yml",
    ".pre-commit-config.yaml",
    ".gitignore",
    "Dockerfile",
    "Makefile",
    "README.md",
    "SECURITY.md",
    "docs/mail-path.md",
    "docs/states.md",
    "docs/settings.md",
    "docs/deploy.md",
    "docs/scaling.md",
    "docs/events-and-suppression.md",
    "docs/provider-limits.md",
    "docs/metrics.md",
    "docs/testing-your-mail.md",
    "docs/upgrading.md",
    "docs/post-office-tests.md",
    "compose.yaml",
    "compose.cluster.yaml",
    "config/base.py",
    "config/celery.py",
    "config/mail.py",
    "config/settings.py",
    "config/transport.py",
    "config/urls.py",
    "config/wsgi.py",
    "config/asgi.py",
    "config/health.py",
    "acme_mail/delivery/health.py",
    "acme_mail/delivery/management/commands/send_queued_mail.py",
    "acme_mail/delivery/management/commands/send_test_mail.py",
    "deploy/cron/acme_mail",
    "deploy/supervisor/acme_mail.conf",
    "manage.py",
    "pyproject.toml",
    "requirements.in",
    "requirements.txt",
    "requirements-dev.in",
    "requirements-dev.txt",
]


def production():
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }


def rendered_python_files(folder):
    """The site's Python files cookiecutter renders: *.py and scripts with a Python shebang,
    except those it copies as they are (_copy_without_render)."""
    copied = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_copy_without_render"]
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder))
        if any(fnmatch.fnmatch(relative, pattern) for pattern in copied) or not path.is_file():
            continue
        if path.suffix == ".py" or path.read_text(errors="replace").startswith("#!/usr/bin/env python"):
            yield path


def test_the_sites_python_holds_no_template_logic_only_its_names():
    tags = {
        str(path.relative_to(SITE_TEMPLATE)): found
        for path in rendered_python_files(SITE_TEMPLATE)
        if (found := [tag for tag in JINJA.findall(path.read_text()) if not NAMES.fullmatch(tag)])
    }
    assert tags == {}, "Jinja in the site's Python: every bake must run the same code"
    assert any(NAMES.search(path.read_text()) for path in rendered_python_files(SITE_TEMPLATE)), (
        "the count found no names either: is it reading the site's files?"
    )


@pytest.mark.parametrize("answers", ANSWERS.values(), ids=ANSWERS.keys())
def test_a_bake_is_clean_safe_and_passes_its_own_tests(tmp_path, answers):
    site = bake(tmp_path, **answers)

    leftovers = [
        str(path.relative_to(site.path))
        for path in site.path.rglob("*")
        if path.is_file() and LEFTOVER.search(path.read_text(errors="replace"))
    ]
    assert leftovers == [], "template text left in the baked site"
    site.run(sys.executable, "-m", "ruff", "check", ".")
    site.run(sys.executable, "-m", "ruff", "format", "--check", ".")
    site.manage("check", "--deploy", "--fail-level", "WARNING", env=production())
    site.manage("makemigrations", "--check", "--dry-run")
    # The state machine's 200 examples run once, in the default bake; answers don't change it.
    quick = {} if not answers else {"STATE_MACHINE_EXAMPLES": "20"}
    site.run(sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", env=quick)
    site.run(COMPOSE, "--file", "compose.yaml", "config", "--quiet")
    site.run(COMPOSE, "config", "--quiet")  # with compose.override.yaml
    cluster = ["--file", "compose.yaml", "--file", "compose.cluster.yaml"]
    site.run(COMPOSE, *cluster, "config", "--quiet")
    schemas = {"vendor.compose-spec": ["compose.yaml", "compose.override.yaml", "compose.cluster.yaml"]}
    schemas["vendor.github-workflows"] = [".github/workflows/ci.yml"]
    for schema, files in schemas.items():
        site.run(BIN / "check-jsonschema", "--builtin-schema", schema, *files)


def test_a_baked_env_is_safe_to_deploy_as_it_is(tmp_path):
    """supervisor starts the programs with nothing but PATH and the user's variable;
    everything else comes from the baked .env, which must not turn DEBUG on."""
    site = bake(tmp_path)
    manage = [
        "env",
        "-i",
        f"PATH={BIN}:/usr/bin:/bin",
        "ACME_MAIL_USER=acme_mail",
        sys.executable,
        "manage.py",
    ]

    assert "DJANGO_DEBUG" not in env_file(site)
    debug = site.run(
        *manage, "shell", "--no-imports", "-c", "from django.conf import settings; print(settings.DEBUG)"
    )
    assert debug.stdout.strip() == "False"
    site.run(*manage, "check", "--deploy", "--fail-level", "WARNING")


def test_the_hook_creates_env_readable_by_its_owner_only_from_the_start(tmp_path):
    """The hook run with chmod doing nothing, under the usual umask: .env must be 0600 as
    created, never world-readable for a moment."""
    (tmp_path / ".env.example").write_text((SITE_TEMPLATE / ".env.example").read_text())
    hook = TEMPLATE / "hooks" / "post_gen_project.py"
    code = (
        "import os, runpy; os.umask(0o022); os.chmod = os.fchmod = lambda *a, **k: None;"
        f"runpy.run_path({str(hook)!r})"
    )

    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)

    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600


def test_a_default_bake_has_every_file(tmp_path):
    site = bake(tmp_path)

    missing = [name for name in EVERY_BAKE_HAS if not (site.path / name).is_file()]
    assert missing == []


def test_every_bake_gets_its_own_secrets_and_keeps_them_out_of_git(tmp_path):
    first, second = bake(tmp_path / "one"), bake(tmp_path / "two")

    def secrets_of(site):
        lines = (site.path / ".env").read_text().splitlines()
        values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
        names = (
            "DJANGO_SECRET_KEY",
            "RABBITMQ_PASSWORD",
            "RABBITMQ_ERLANG_COOKIE",
            "POSTGRES_PASSWORD",
        )
        return {name: values[name] for name in (*names, "ANYMAIL_WEBHOOK_SECRET")}

    one, two = secrets_of(first), secrets_of(second)
    for name in one:
        assert len(one[name]) >= 32, f"{name} is too short"
        assert one[name] != two[name], f"{name} is the same in two bakes"
    assert "guest" not in (
        one["RABBITMQ_PASSWORD"],
        (first.path / ".env").read_text().split("RABBITMQ_USER=")[1],
    )
    assert ".env" in (first.path / ".gitignore").read_text().splitlines()
    # The webhooks' HTTP basic auth: "user:password", the password as long as the others.
    user, password = one["ANYMAIL_WEBHOOK_SECRET"].split(":")
    assert user and len(password) >= 32
    assert (first.path / ".env").stat().st_mode & 0o077 == 0, ".env is readable by others"
    assert "DJANGO_SECRET_KEY=\n" in (first.path / ".env.example").read_text()
