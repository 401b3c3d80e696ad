"""Baking sites and running them: every baked site runs with this virtualenv."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from harness import bakery
from harness.services import postgres_database, rabbitmq_vhost
from harness.smtp_catcher import SmtpCatcher

TEMPLATE = Path(__file__).resolve().parents[1]
# The template's site folder, as it is before baking.
SITE_TEMPLATE = TEMPLATE / "{{cookiecutter.__project_dir}}"
# Scripts the tests run inside a baked site.
SCRIPTS = TEMPLATE / "tests" / "site"
# Where measured figures gather during a run (another file for a run inside a test).
FIGURES = Path(os.environ.get("TEST_FIGURES") or TEMPLATE / "build" / "test-figures.txt")
BIN = Path(sys.executable).parent
# The container engine and what runs on it (stand-in images, RabbitMQ 4); xdist groups on pytest 9.2.
pytest_plugins = ["container_fixtures", "harness.xdist_groups"]


def report(line):
    """Print a measured figure at the end of the test run (from any xdist worker)."""
    with FIGURES.open("a") as figures:
        figures.write(line + "\n")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text("")


def bake(output_dir, **answers):
    return Site(bakery.bake(output_dir, **answers))


def get_json(url, token=None):
    """(status, JSON) of a GET, with a health token if given; None while nothing answers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return None


def wait_for(condition, timeout, what):
    """Poll `condition` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return result


class Site:
    """A baked site, its commands run with this virtualenv's Python."""

    def __init__(self, path):
        self.path = path
        self.env = {}
        self.processes = []

    def environ(self, extra=None):
        return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **self.env, **(extra or {})}

    def run(self, *args, env=None, check=True, timeout=300):
        result = subprocess.run(
            [str(arg) for arg in args],
            cwd=self.path,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode:
            pytest.fail(
                f"`{' '.join(map(str, args))}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def manage(self, *args, **kwargs):
        return self.run(sys.executable, "manage.py", *args, **kwargs)

    def script(self, name, *args, **kwargs):
        """Run one of tests/site/ inside the site; return what it printed as JSON."""
        return json.loads(self.run(sys.executable, SCRIPTS / name, *args, **kwargs).stdout)

    def start(self, *args, env=None, log="process.log"):
        """Start a long-running command of the site; it is stopped when the test ends."""
        output = open(self.path / log, "ab")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [str(arg) for arg in args],
            cwd=self.path,
            env=self.environ(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = output
        self.processes.append(process)
        return process

    def stop(self, process):
        """Kill a process started with `start`, as a crash or `kill -9` would."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.log.close()
        self.processes.remove(process)

    def stop_all(self):
        for process in list(self.processes):
            self.stop(process)

    def statuses(self, env=None):
        return self.script("statuses.py", env=env)

    def start_worker(self, name="mail", env=None):
        """Start deploy/bin/worker and wait until it consumes. name=None: the node name the
        site gives its worker by itself."""
        log = self.path / f"worker-{name or 'default'}.log"
        started = log.read_bytes().count(b" ready.") if log.exists() else 0
        named = {"WORKER_NAME": name} if name else {}
        process = self.start("deploy/bin/worker", env={**named, **(env or {})}, log=log.name)
        wait_for(lambda: log.read_bytes().count(b" ready.") > started, 30, f"worker {name} to be ready")
        return process


def service_answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


# What a test may lack, by the names SKIP takes (scripts/test-needs provides each).
NEEDS = ("rabbitmq", "postgresql", "root", "containers", "chromium", "network", "prometheus")


def cannot_run(message, need):
    """Fail: the test lacks `need`. It skips only when asked by name (SKIP=need,...), never
    under CI=true; the run's summary counts the skips and says why."""
    assert need in NEEDS, need
    asked = os.environ.get("SKIP", "").split(",")
    if os.environ.get("CI") == "true" or need not in asked:
        pytest.fail(f"{message} (scripts/test-needs provides it; or SKIP={need} make test)")
    pytest.skip(f"SKIP={need}: {message}")


def require_service(name, port):
    if not service_answers(port):
        cannot_run(f"{name} is not reachable on 127.0.0.1:{port}; this test needs it", name.lower())


def require_root(why):
    """The few tests that change the machine (users, namespaces, the broker's vhosts) need root."""
    if os.geteuid() != 0:
        cannot_run(f"this test needs root: {why}", "root")


def pytest_terminal_summary(terminalreporter):
    """How many tests were skipped, and why (post_office's suite reports its own skips)."""
    if FIGURES.exists() and (lines := FIGURES.read_text().splitlines()):
        terminalreporter.section("measured")
        for line in sorted(lines):
            terminalreporter.write_line(line)
    skipped = terminalreporter.stats.get("skipped", [])
    why = Counter(str(report.longrepr[-1]).removeprefix("Skipped: ") for report in skipped)
    terminalreporter.section("skipped", yellow=bool(skipped), green=not skipped)
    for reason, count in why.most_common():
        terminalreporter.write_line(f"{count} skipped: {reason}")
    asked = os.environ.get("SKIP") or "nothing"
    terminalreporter.write_line(f"{len(skipped)} tests skipped (SKIP asked for {asked})")


@pytest.fixture
def rabbitmq():
    """A fresh RabbitMQ virtual host on the machine's broker; yields its URL."""
    require_service("RabbitMQ", 5672)
    require_root("rabbitmqctl makes its virtual host, and only root may read the broker's Erlang cookie")
    with rabbitmq_vhost("test") as url:
        yield url


@pytest.fixture
def postgres():
    """A fresh database on the machine's PostgreSQL; yields its URL."""
    require_service("PostgreSQL", 5432)
    with postgres_database("test") as url:
        yield url


@pytest.fixture
def smtp_server():
    with SmtpCatcher() as server:
        yield server


@pytest.fixture
def site(tmp_path):
    """A default bake, migrated on SQLite."""
    baked = bake(tmp_path)
    baked.manage("migrate", "--verbosity", "0")
    yield baked
    baked.stop_all()
