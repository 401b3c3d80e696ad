"""The baked site's Dockerfile: clean for hadolint, unprivileged, built from the pinned
requirements, and with a HEALTHCHECK that tells a live web server from a dead one."""

import json
import re

import pytest
from catcher import free_port
from conftest import BIN, bake, service_answers, wait_for


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    """One default bake, which the tests read but do not change."""
    return bake(tmp_path_factory.mktemp("docker"))


def instructions(dockerfile):
    """[(instruction, arguments)] of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def final_stage(dockerfile):
    steps = instructions(dockerfile)
    last_from = max(index for index, (instruction, _) in enumerate(steps) if instruction == "FROM")
    return steps[last_from:]


def test_hadolint_finds_no_error(baked):
    result = baked.run(BIN / "hadolint", "--failure-threshold", "error", "Dockerfile", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_user_and_holds_only_the_pinned_requirements(baked):
    dockerfile = baked.path / "Dockerfile"
    steps = instructions(dockerfile)
    final = final_stage(dockerfile)

    users = [arguments for instruction, arguments in final if instruction == "USER"]
    assert users, "the final stage names a user"
    assert users[-1].split(":")[0] not in ("0", "root")
    # The requirements are installed in a build stage; the final stage copies the result
    # and installs nothing, so neither pip's cache nor build tools end up in the image.
    assert (
        "RUN",
        "python -m venv /venv && /venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt",
    ) in steps
    assert ("COPY", "--from=build /venv /venv") in final
    runs = " ".join(arguments for instruction, arguments in final if instruction == "RUN")
    assert not re.search(r"pip install|apt-get|apk add|gcc|build-essential", runs)
    # USER's user and group both exist: useradd --user-group would give the group another id.
    uid, gid = users[-1].split(":")
    assert re.search(rf"groupadd [^&]*--gid {gid}\b", runs) and re.search(
        rf"useradd [^&]*--uid {uid}\b", runs
    )
    requirements = [
        line
        for line in (baked.path / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[a-z0-9_.\[\]-]+==[0-9][0-9a-z.]*", line) for line in requirements), (
        requirements
    )

    ignored = (baked.path / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv/", ".git/", "media/"} <= set(ignored), (
        "secrets and local state stay out of the image"
    )


def test_the_healthcheck_passes_only_while_the_site_reaches_a_worker(site):
    """Runs the Dockerfile's HEALTHCHECK (/healthz) against deploy/bin/web with production
    settings, with WEB_BIND as the image sets it."""
    steps = instructions(site.path / "Dockerfile")
    [healthcheck] = [arguments for instruction, arguments in steps if instruction == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    port = free_port()
    production = {"WEB_BIND": f"0.0.0.0:{port}", "DJANGO_DEBUG": "false"}

    def healthy():
        return site.run(*command, env=production, check=False).returncode == 0

    site.start("deploy/bin/web", env=production, log="web.log")
    wait_for(lambda: service_answers(port), 30, "gunicorn listening")
    assert not healthy(), "healthy with no worker running"
    assert '"GET /healthz HTTP/1.1" 503' in (site.path / "web.log").read_text()

    site.start_worker()
    assert healthy()

    site.stop_all()
    assert not healthy()
