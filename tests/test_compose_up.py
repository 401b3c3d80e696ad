"""`docker compose up` of a baked site, for real: the image built from its Dockerfile, and
compose.yaml with compose.override.yaml unmodified (only their host port variables set), on
the engine of containers.py with the stand-in images of stand_ins.py (RabbitMQ 4.0, Debian's
PostgreSQL 17 and Python 3.13, a Mailpit look-alike)."""

import json
import os
import re
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from catcher import free_port
from conftest import bake, get_json, report, wait_for
from containers import CONTAINERS
from deployment import COMPOSE, env_file

pytestmark = CONTAINERS
PORTS = ("WEB_PORT", "RABBITMQ_UI_PORT", "MAILPIT_UI_PORT", "FLOWER_UI_PORT")


class ComposeSite:
    """A baked site's compose project on the test's engine, with host ports of its own."""

    def __init__(self, site, engine):
        self.site, self.engine = site, engine
        self.project = f"compose-test-{uuid.uuid4().hex[:8]}"
        self.ports = {name: str(free_port()) for name in PORTS}

    def compose(self, *args, check=True, timeout=300):
        env = {**self.engine.compose_env, **self.ports}
        return self.site.run(
            COMPOSE, "--project-name", self.project, *args, env=env, check=check, timeout=timeout
        )

    def exec(self, service, *command, check=True):
        return self.compose("exec", "-T", service, *command, check=check)

    def up(self, *services):
        result = self.compose("up", "--detach", "--wait", "--wait-timeout", "240", *services, check=False)
        if result.returncode:
            logs = self.compose("logs", "--tail", "25", check=False).stdout
            states = {name: (state["State"], state["Health"]) for name, state in self.states().items()}
            pytest.fail(f"`compose up --wait` failed:\n{result.stderr[-2000:]}\n{states}\n{logs[-6000:]}")

    def states(self):
        """{service: its container's state} as `compose ps -a` reports them."""
        lines = self.compose("ps", "--all", "--format", "json").stdout.splitlines()
        return {entry["Service"]: entry for entry in map(json.loads, lines)}

    def container(self, service):
        return self.engine.inspect(self.compose("ps", "--all", "--quiet", service).stdout.strip())

    def get(self, port_name, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[port_name]}{path}", timeout=10) as answer:
            return answer.status, json.loads(answer.read())

    def caught(self):
        """Recipients of the mail in the mail catcher, from its API."""
        _, listing = self.get("MAILPIT_UI_PORT", "/api/v1/messages")
        return sorted(to["Address"] for message in listing["messages"] for to in message["To"])

    def statuses(self):
        """{recipient: status} of every mail the site recorded."""
        code = (
            "import json; from django.apps import apps; "
            "deliveries = apps.get_model('delivery', 'Delivery').objects.select_related('email'); "
            "print(json.dumps({d.email.to[0]: d.state for d in deliveries}))"
        )
        return json.loads(self.exec("web", "python", "manage.py", "shell", "--no-imports", "-c", code).stdout)

    def queued(self, queue=None):
        """Messages waiting in a queue of the site's vhost (its mail queue unless named), as
        RabbitMQ counts them."""
        vhost = env_file(self.site)["RABBITMQ_USER"]
        queue = queue or env_file(self.site)["MAIL_QUEUE"]
        listing = self.exec(
            "rabbitmq",
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages",
            "--formatter=json",
        )
        return {entry["name"]: entry["messages"] for entry in json.loads(listing.stdout)}.get(queue, 0)

    def health_check(self, service):
        """A service's health check from the compose files, as a command line to exec."""
        config = json.loads(self.compose("config", "--format", "json").stdout)
        kind, *test = config["services"][service]["healthcheck"]["test"]
        test = [arg.replace("$$", "$") for arg in test]  # `config` writes a literal $ as $$
        return ["sh", "-c", *test] if kind == "CMD-SHELL" else test

    def send_test_mail(self, to, timeout=60):
        return self.exec(
            "web", "python", "manage.py", "send_test_mail", to, "--timeout", str(timeout), check=False
        )


@pytest.fixture(scope="module")
def stack(engine, stand_ins, tmp_path_factory):
    """A default bake built and brought up with `compose up --wait`, taken down after."""
    site = ComposeSite(bake(tmp_path_factory.mktemp("compose-up")), engine)
    try:
        started = time.monotonic()
        site.compose("build", timeout=900)
        built = time.monotonic()
        site.up()
        report(f"[compose] build {built - started:.0f} s, up --wait {time.monotonic() - built:.0f} s")
        yield site
    finally:
        site.compose("down", "--volumes", "--timeout", "10", "--remove-orphans", check=False)


def test_up_wait_brings_every_service_up_healthy_after_migrate_as_the_images_user(stack):
    states = stack.states()
    assert (states["migrate"]["State"], states["migrate"]["ExitCode"]) == ("exited", 0)
    running = {name: state["Health"] for name, state in states.items() if name != "migrate"}
    assert running == dict.fromkeys(
        ["rabbitmq", "postgres", "mailpit", "web", "worker", "sweeper"], "healthy"
    )

    [user] = re.findall(r"(?m)^USER (\d+):(\d+)$", (stack.site.path / "Dockerfile").read_text())
    for service in ("web", "worker", "sweeper"):
        status = Path(f"/proc/{stack.container(service)['State']['Pid']}/status").read_text()
        ids = {field: line.split()[1:3] for field, line in re.findall(r"(?m)^((?:Uid|Gid)):(.*)$", status)}
        assert ids == {"Uid": [user[0]] * 2, "Gid": [user[1]] * 2}, service
        # The user and its group have names, and the media volume is theirs to write.
        names = stack.exec(service, "sh", "-c", "id -un && id -gn && touch /app/media/.written").stdout
        assert names.split() == ["site", "site"], service


def test_both_health_checks_answer_200_through_the_published_port(stack):
    assert stack.get("WEB_PORT", "/healthz") == (200, {"database": "ok"})
    token = env_file(stack.site)["HEALTH_TOKEN"]
    status, mail = get_json(f"http://127.0.0.1:{stack.ports['WEB_PORT']}/healthz/mail", token)
    assert status == 200, mail
    assert mail["mail_goes_to"] == "smtp://mailpit:1025"


def test_a_test_mail_from_the_web_container_arrives_and_is_recorded_sent(stack):
    result = stack.send_test_mail("ada@example.com")

    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_for(lambda: "ada@example.com" in stack.caught(), 30, "the mail in the catcher")
    assert stack.statuses()["ada@example.com"] == "sent"


def test_compose_restarts_a_worker_killed_with_kill_9_and_mail_still_goes(stack):
    before = stack.container("worker")["State"]["Pid"]
    # From the host: the kernel ignores SIGKILL sent to a container's first process from inside.
    os.kill(before, signal.SIGKILL)

    def restarted():
        worker = stack.container("worker")
        return worker["State"]["Pid"] not in (0, before) and worker["State"]["Health"]["Status"] == "healthy"

    wait_for(restarted, 120, "the worker restarted and healthy")
    assert stack.send_test_mail("bob@example.com").returncode == 0
    assert wait_for(lambda: "bob@example.com" in stack.caught(), 30, "the second mail in the catcher")


def test_the_workers_health_check_asks_for_its_own_node(stack):
    check = stack.health_check("worker")
    assert stack.exec("worker", *check, check=False).returncode == 0
    # In the web container the same command asks for a worker named after web's host: none.
    assert stack.exec("web", *check, check=False).returncode != 0


def test_rabbitmqs_health_check_fails_while_its_app_is_stopped(stack):
    """`rabbitmq-diagnostics ping` passes then, and web and worker started before the vhost was up."""
    check = stack.health_check("rabbitmq")
    assert stack.exec("rabbitmq", *check, check=False).returncode == 0
    stack.exec("rabbitmq", "rabbitmqctl", "-q", "stop_app")
    try:
        assert stack.exec("rabbitmq", *check, check=False).returncode != 0
    finally:
        # A restart, not start_app: with transient queues left from the stopped app, 4.0.5
        # can refuse to start it again (failed_to_deny_deprecated_features).
        stack.compose("restart", "--timeout", "10", "rabbitmq")
    wait_for(
        lambda: stack.exec("rabbitmq", *check, check=False).returncode == 0, 60, "RabbitMQ healthy again"
    )


def test_down_then_up_keeps_the_database_and_the_brokers_durable_messages(stack):
    stack.compose("stop", "--timeout", "10", "worker", "sweeper")
    waiting = stack.send_test_mail("cy@example.com", timeout=3)
    assert "still queued" in waiting.stdout, waiting.stdout
    wait_for(lambda: stack.queued() == 1, 30, "the task in RabbitMQ's mail queue")
    recorded = stack.statuses()

    stack.compose("down", "--timeout", "10")
    stack.up("rabbitmq", "postgres")
    # A quorum queue takes a moment after its node starts before it counts its messages.
    wait_for(lambda: stack.queued() == 1, 60, "the queued task back in RabbitMQ (it was lost)")
    stack.up()

    assert wait_for(lambda: stack.caught() == ["cy@example.com"], 60, "the queued mail delivered after up")
    assert stack.statuses() == {**recorded, "cy@example.com": "sent"}
