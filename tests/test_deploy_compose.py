"""compose.yaml and compose.override.yaml of the baked site: valid for the Compose spec and
for Docker Compose v2 itself, and saying what the site's docs/deploy.md promises. Here the files are read
and the commands they start run on this machine; test_compose_up.py runs the files themselves."""

import base64
import configparser
import json
import os
import re
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness.baked_site import BIN, bake, env_file
from harness.compose_site import COMPOSE, MAY_HOLD
from harness.deployed_site import SITE_USER
from harness.needs import require_root, service_answers
from harness.processes import wait_for
from harness.smtp_catcher import free_port

SITE_SERVICES = {"migrate", "web", "worker", "sweeper"}
APP_SERVICES = SITE_SERVICES | {"flower"}
NODES = ("rabbitmq", "rabbitmq2", "rabbitmq3")


def compose_config(site, *files, profile=None, env=None):
    """The configuration Docker Compose would run, resolved from the files and .env."""
    options = [option for file in files for option in ("--file", file)]
    if profile:
        options += ["--profile", profile]
    result = site.run(COMPOSE, *options, "config", "--format", "json", env=env)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    """One default bake, which the tests read but do not change."""
    return bake(tmp_path_factory.mktemp("compose"))


def test_the_compose_files_are_valid_for_the_compose_spec_and_for_docker_compose(baked, tmp_path):
    spec = [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec"]
    baked.run(*spec, "compose.yaml", "compose.override.yaml", "compose.cluster.yaml")
    cluster = ["compose.yaml", "compose.override.yaml", "compose.cluster.yaml"]
    for files in (["compose.yaml"], ["compose.yaml", "compose.override.yaml"], cluster):
        for profile in ([], ["--profile", "monitoring"]):
            options = [option for file in files for option in ("--file", file)]
            baked.run(COMPOSE, *options, *profile, "config", "--quiet")

    # Both checks can fail: a misspelt key breaks the spec, a missing .env breaks Compose.
    broken = tmp_path / "compose.yaml"
    broken.write_text((baked.path / "compose.yaml").read_text().replace("healthcheck:", "healthchek:"))
    assert baked.run(*spec, broken, check=False).returncode != 0
    without_env = tmp_path / "without-env"
    without_env.mkdir()
    shutil.copy(baked.path / "compose.yaml", without_env)
    config = baked.run(COMPOSE, "--file", without_env / "compose.yaml", "config", "--quiet", check=False)
    assert config.returncode != 0


def test_compose_runs_the_site_on_rabbitmq_and_postgresql_as_the_deploy_page_says(baked):
    production = compose_config(baked, "compose.yaml", profile="monitoring")
    services = production["services"]
    env = env_file(baked)

    rabbitmq = services["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:4.") and rabbitmq["image"].endswith("-management")
    assert rabbitmq["image"].count(".") == 1, "pin a minor version, such as rabbitmq:4.3-management"
    # Healthy once the broker app runs and listens: `ping` also answers while the app is stopped.
    checks = "rabbitmq-diagnostics -q check_running && rabbitmq-diagnostics -q check_port_connectivity"
    assert rabbitmq["healthcheck"]["test"] == ["CMD-SHELL", checks]
    assert rabbitmq["volumes"][0]["target"] == "/var/lib/rabbitmq"
    assert rabbitmq["hostname"], "RabbitMQ finds its data by host name"
    assert env["RABBITMQ_USER"] == SITE_USER
    assert "guest" not in json.dumps(production)
    # Over TCP: the official image's first-boot server answers on its Unix socket only.
    assert services["postgres"]["healthcheck"]["test"] == ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U postgres"]

    assert set(services) == {"rabbitmq", "postgres"} | APP_SERVICES
    for name in SITE_SERVICES:
        service = services[name]
        conditions = {dependency: value["condition"] for dependency, value in service["depends_on"].items()}
        assert conditions.items() >= {"rabbitmq": "service_healthy", "postgres": "service_healthy"}.items()
        volumes = [(volume["source"], volume["target"]) for volume in service["volumes"]]
        assert volumes == [("media", service["environment"]["MEDIA_ROOT"])], name
        assert service["environment"]["DJANGO_DEBUG"] == "false", name
        assert service["environment"]["CELERY_BROKER_URL"].startswith(f"amqp://{SITE_USER}:")
        assert service["environment"]["DATABASE_URL"].startswith(f"postgres://{SITE_USER}:")
    assert services["flower"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    for name in ("web", "worker", "sweeper"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
    # `up --wait` waits for migrate to exit 0 and for every other service to be healthy, which
    # a service without a health check (`disable`) never is; web's is the image's, at 2 s first.
    assert services["migrate"]["healthcheck"] == {"disable": True}
    for name in APP_SERVICES - {"migrate"}:
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] and check["start_interval"], name
    dockerfile = (baked.path / "Dockerfile").read_text()
    image_check = json.loads(re.search(r"(?m)^HEALTHCHECK .* CMD (\[.*\])$", dockerfile)[1])
    assert services["web"]["healthcheck"]["test"] == ["CMD", *image_check]
    assert services["web"]["healthcheck"]["start_interval"] == "2s"

    published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
    assert {(name, port["host_ip"], port["target"]) for name, port in published} == {
        ("rabbitmq", "127.0.0.1", 15672),
        ("web", "127.0.0.1", 8000),
        ("flower", "127.0.0.1", 5555),
    }


# Variables of .env and of the site's code that compose gives no site process, and why.
NOT_FOR_THE_SITE = {
    "RABBITMQ_ERLANG_COOKIE": "the RabbitMQ nodes' shared secret",
    "RABBITMQ_FLOWER_PASSWORD": "Flower's broker user",
    "FLOWER_PASSWORD": "Flower's web UI",
    "GRAFANA_PASSWORD": "compose.monitoring.yaml's Grafana",
    "POSTGRES_PASSWORD": "PostgreSQL's superuser",
    "RABBITMQ_USER": "in CELERY_BROKER_URL",
    "RABBITMQ_PASSWORD": "in CELERY_BROKER_URL",
    "POSTGRES_SITE_USER": "in DATABASE_URL",
    "POSTGRES_SITE_PASSWORD": "in DATABASE_URL",
    "FILESYSTEM_BROKER_DIR": "compose runs RabbitMQ",
    "WEB_BIND": "the image sets it",
}


def test_the_site_gets_every_setting_it_reads_and_none_of_the_brokers_or_databases_secrets(baked):
    config = compose_config(baked, "compose.yaml", "compose.cluster.yaml", profile="monitoring")
    services, env = config["services"], env_file(baked)
    code = "\n".join(path.read_text() for path in baked.path.glob("**/*.py") if "tests" not in path.parts)
    scripts = "\n".join(path.read_text() for path in (baked.path / "deploy" / "bin").iterdir())
    read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", code))
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", scripts))
    documented = set(re.findall(r"(?m)^(?:# )?([A-Z][A-Z0-9_]+)=", (baked.path / ".env.example").read_text()))
    assert {"DJANGO_SECRET_KEY", "EMAIL_URL", "WORKER_CONCURRENCY", "AWS_REGION"} <= read | documented

    for name in SITE_SERVICES:
        assert (read | documented) - set(services[name]["environment"]) == set(NOT_FOR_THE_SITE), name

    def holders(secret):
        return {
            name for name, service in services.items() if secret in json.dumps(service.get("environment"))
        }

    assert {name: holders(env[name]) for name in MAY_HOLD} == {
        **MAY_HOLD,
        "RABBITMQ_ERLANG_COOKIE": set(NODES),
    }

    # RabbitMQ's users: the site's with no tags, Flower's with the management tag, on one vhost.
    users = json.loads(config["configs"]["rabbitmq-users"]["content"])
    assert {user["name"]: user["tags"] for user in users["users"]} == {
        SITE_USER: [],
        "flower": ["management"],
    }
    assert {(grant["user"], grant["vhost"]) for grant in users["permissions"]} == {
        (SITE_USER, SITE_USER),
        ("flower", SITE_USER),
    }
    for node in NODES:
        assert [entry["target"] for entry in services[node]["configs"]] == ["/etc/rabbitmq/users.json"]
    assert len(env["POSTGRES_SITE_PASSWORD"]) >= 32 and len(env["RABBITMQ_FLOWER_PASSWORD"]) >= 32


def test_the_published_host_ports_move_with_their_variables(baked):
    moved = {
        "WEB_PORT": "18000",
        "RABBITMQ_UI_PORT": "18001",
        "FLOWER_UI_PORT": "18002",
        "MAILPIT_UI_PORT": "18003",
    }
    files = ("compose.yaml", "compose.override.yaml")
    services = compose_config(baked, *files, profile="monitoring", env=moved)["services"]
    published = {
        name: [port["published"] for port in service.get("ports", [])] for name, service in services.items()
    }
    assert {name: ports for name, ports in published.items() if ports} == {
        "web": ["18000"],
        "rabbitmq": ["18001"],
        "flower": ["18002"],
        "mailpit": ["18003"],
    }


def test_compose_starts_the_same_commands_as_supervisor(baked):
    services = compose_config(baked, "compose.yaml")["services"]
    supervisor = configparser.RawConfigParser()
    supervisor.read(baked.path / "deploy" / "supervisor" / f"{SITE_USER}.conf")

    for name in ("web", "worker"):
        program = supervisor[f"program:{SITE_USER}-{name}"]
        assert program["command"] == f"%(here)s/../bin/{name}"
        assert services[name]["command"] == [f"deploy/bin/{name}"]
        # docker stop waits as long as supervisorctl stop does.
        grace = services[name]["stop_grace_period"]
        assert seconds(grace) == int(program["stopwaitsecs"]), name
    assert services["sweeper"]["command"] == ["deploy/bin/sweep"]
    for command in ("web", "worker", "sweep"):
        assert (baked.path / "deploy" / "bin" / command).stat().st_mode & 0o111


def seconds(duration):
    """Seconds in a Go duration as Compose prints it: 40s, 5m0s."""
    minutes, _, rest = duration.rpartition("m")
    return int(minutes or 0) * 60 + int(rest.rstrip("s") or 0)


def test_mailpit_catches_the_mail_only_in_the_local_override(baked):
    production = compose_config(baked, "compose.yaml")["services"]
    local = compose_config(baked, "compose.yaml", "compose.override.yaml")["services"]

    assert "mailpit" not in production
    assert "mailpit" not in (baked.path / "compose.yaml").read_text()
    assert local["mailpit"]["image"].startswith("axllent/mailpit:v")
    assert [(port["host_ip"], port["target"]) for port in local["mailpit"]["ports"]] == [("127.0.0.1", 8025)]
    for name in ("web", "worker"):
        assert local[name]["environment"]["EMAIL_URL"] == "smtp://mailpit:1025"
        assert production[name]["environment"]["EMAIL_URL"] == env_file(baked)["EMAIL_URL"]


def test_flower_is_optional_and_asks_for_the_password_baked_into_env(baked, rabbitmq):
    assert "flower" not in compose_config(baked, "compose.yaml")["services"]
    flower = compose_config(baked, "compose.yaml", profile="monitoring")["services"]["flower"]
    password = env_file(baked)["FLOWER_PASSWORD"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == f"flower:{password}"
    assert len(password) >= 32
    assert password != env_file(bake(baked.path.parent / "other"))["FLOWER_PASSWORD"]

    # Flower's command from the compose file, with its password, on this machine.
    port = free_port()
    baked.start(
        *flower["command"],
        env={
            "FLOWER_BASIC_AUTH": flower["environment"]["FLOWER_BASIC_AUTH"],
            "FLOWER_ADDRESS": "127.0.0.1",
            "FLOWER_PORT": str(port),
            "CELERY_BROKER_URL": rabbitmq,
        },
        log="flower.log",
    )
    try:
        wait_for(lambda: service_answers(port), 30, "Flower listening")
        answers = [status(f"http://127.0.0.1:{port}/", password) for password in (None, "guess", password)]
        assert answers == [401, 401, 200]
        # The compose health check, on this port: it passes while Flower runs, and only then.
        health_check = [arg.replace(":5555/", f":{port}/") for arg in flower["healthcheck"]["test"][1:]]
        assert baked.run(*health_check, check=False).returncode == 0
    finally:
        baked.stop_all()
    assert baked.run(*health_check, check=False).returncode != 0


def status(url, password):
    """The HTTP status of a GET, as user "flower" with `password` if it is not None."""
    request = urllib.request.Request(url)
    if password is not None:
        token = base64.b64encode(f"flower:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.root
def test_the_sweeper_stops_on_docker_stop_as_a_containers_first_process(site):
    """docker stop sends TERM to the container's first process, which the kernel spares
    unless the process handles TERM; `unshare --pid` makes deploy/bin/sweep that process here."""
    require_root("unshare --pid makes a PID namespace")
    sweeper = site.start("unshare", "--pid", "--fork", "--kill-child", "deploy/bin/sweep", log="sweep.log")
    # The first round ends with cleanup_mail; then the sweeper sleeps for 60 s.
    wait_for(lambda: "Deleted 0 mails" in (site.path / "sweep.log").read_text(), 60, "a sweep round")
    [first_process] = Path(f"/proc/{sweeper.pid}/task/{sweeper.pid}/children").read_text().split()

    os.kill(int(first_process), signal.SIGTERM)
    wait_for(lambda: sweeper.poll() is not None, 10, "the sweeper to stop on TERM")
    assert sweeper.returncode == 0
