"""The baked site's Dockerfile: clean for hadolint, unprivileged, built from the pinned
requirements, and with a HEALTHCHECK that tells a live web server from a dead one."""

import json
import re

import pytest
from harness.baked_site import BIN, bake, env_file, get_json
from harness.needs import service_answers
from harness.processes import wait_for
from harness.smtp_catcher import free_port
from harness.tcp_proxy import TcpProxy


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
        "python -m venv /venv && "
        "/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt",
    ) in steps
    assert ("COPY", "--from=build /venv /venv") in final
    runs = " ".join(arguments for instruction, arguments in final if instruction == "RUN")
    assert not re.search(r"pip install|apt-get|apk add|gcc|build-essential", runs)
    # USER's user and group both exist: useradd --user-group would give the group another id.
    uid, gid = users[-1].split(":")
    assert re.search(rf"groupadd [^&]*--gid {gid}\b", runs) and re.search(
        rf"useradd [^&]*--uid {uid}\b", runs
    )

    ignored = (baked.path / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv/", ".git/", "media/"} <= set(ignored), (
        "secrets and local state stay out of the image"
    )


def test_the_healthcheck_follows_the_web_server_not_the_mail(site, rabbitmq):
    """Runs the Dockerfile's HEALTHCHECK against deploy/bin/web with production settings, with
    WEB_BIND as the image sets it: healthy with no worker and the broker cut (the site still
    serves and queues mail), while /healthz/mail says why; unhealthy once web is gone."""
    steps = instructions(site.path / "Dockerfile")
    [healthcheck] = [arguments for instruction, arguments in steps if instruction == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    port = free_port()
    token = env_file(site)["HEALTH_TOKEN"]
    with TcpProxy(5672) as broker:
        production = {
            "WEB_BIND": f"0.0.0.0:{port}",
            "DJANGO_DEBUG": "false",
            "CELERY_BROKER_URL": rabbitmq.replace(":5672/", f":{broker.port}/"),
        }

        def healthy():
            return site.run(*command, env=production, check=False).returncode == 0

        site.start("deploy/bin/web", env=production, log="web.log")
        wait_for(lambda: service_answers(port), 30, "gunicorn listening")
        broker.cut()
        assert healthy(), "unhealthy while the web server serves, with no worker and no broker"
        mail = get_json(f"http://127.0.0.1:{port}/healthz/mail", token)
        assert mail[0] == 503
        assert "Connection refused" in mail[1]["broker"], mail

    site.stop_all()
    assert not healthy()
