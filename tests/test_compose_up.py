"""`docker compose up` of a baked site, for real: the image built from its Dockerfile, and
compose.yaml with compose.override.yaml unmodified (only their host port variables set), on
the engine of harness/containers.py with the stand-in images of harness/stand_ins.py
(RabbitMQ 4.0, Debian's PostgreSQL 17 and Python 3.13, a Mailpit look-alike)."""

import json
import os
import re
import signal
from pathlib import Path

import pytest
from harness.baked_site import bake, env_file, get_json
from harness.compose_site import MAY_HOLD, ComposeSite, brought_up
from harness.containers import CONTAINERS
from harness.processes import wait_for

pytestmark = CONTAINERS


@pytest.fixture(scope="module")
def stack(engine, stand_ins, tmp_path_factory):
    """A default bake built and brought up with `compose up --wait`, taken down after."""
    site = ComposeSite(bake(tmp_path_factory.mktemp("compose-up")), engine)
    with brought_up(site, "compose"):
        yield site


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


def test_each_service_holds_only_its_own_secrets_and_no_site_process_is_an_administrator(stack):
    env = env_file(stack.site)
    secrets = {name for name in env if name.endswith(("_PASSWORD", "_SECRET", "_KEY", "_TOKEN", "_COOKIE"))}
    assert secrets <= set(MAY_HOLD)
    # Flower, on demand: one-off containers with its environment, beside the running services.
    flower = ("--profile", "monitoring", "run", "--rm", "--no-deps", "-T", "flower")
    held = {name: stack.holders(env[name]) for name in MAY_HOLD}
    flower_env = stack.compose(*flower, "env").stdout
    for name in MAY_HOLD:
        held[name] |= {"flower"} if env[name] in flower_env else set()
    assert held == MAY_HOLD
    # Flower's own broker user reaches the workers, and the management API's queue list.
    queues = "import os, urllib.request as u; u.urlopen(os.environ['FLOWER_BROKER_API'] + 'queues')"
    ping = ("celery", "-A", "config", "inspect", "ping", "--timeout", "10")
    assert stack.compose(*flower, *ping, check=False).returncode == 0
    assert stack.compose(*flower, "python", "-c", queues, check=False).returncode == 0

    # The site reaches PostgreSQL as a role that owns its database and tables, and nothing more.
    who = (
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('SELECT current_user'); print(cursor.fetchone()[0])"
    )
    role = stack.exec("web", "python", "manage.py", "shell", "--no-imports", "-c", who).stdout.strip()
    assert role == env["POSTGRES_SITE_USER"]

    def sql(query, database="postgres"):
        return stack.exec("postgres", "psql", "-U", "postgres", "-d", database, "-tAc", query).stdout.split()

    powers = "rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
    assert sql(f"SELECT {powers} FROM pg_roles WHERE rolname = '{role}'") == ["f|f|f|f|f"]
    assert sql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{role}'") == [role]
    assert sql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", role) == [role]

    # RabbitMQ has no administrator, and each user reaches the site's virtual host only.
    listed = json.loads(stack.exec("rabbitmq", "rabbitmqctl", "-q", "list_users", "--formatter=json").stdout)
    site_user = env["RABBITMQ_USER"]
    assert {user["user"]: user["tags"] for user in listed} == {site_user: [], "flower": ["management"]}
    for user in (site_user, "flower"):
        command = ["rabbitmqctl", "-q", "list_user_permissions", user, "--formatter=json"]
        permissions = json.loads(stack.exec("rabbitmq", *command).stdout)
        assert [entry["vhost"] for entry in permissions] == [site_user], user


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
    # podman's DNS (aardvark-dns) reloads as containers stop, and may not answer for a while
    # (over 30 s seen on a busy machine).
    resolves = ("python", "-c", "import socket; socket.getaddrinfo('postgres', 5432)")
    wait_for(lambda: stack.exec("web", *resolves, check=False).returncode == 0, 120, "postgres resolved")
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
