"""podman as the tests' container engine where there is no Docker engine and no systemd: its
settings, its Docker API for Compose (behind api_version_proxy.py), and the health checks
that systemd timers would run. close() ends everything start() began."""

import http.client
import json
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .containers import Engine, Unavailable
from .processes import poll

HERE = Path(__file__).parent
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")  # netavark turns it on for its NAT


def settings():
    """containers.conf for this machine."""
    # Without CAP_SYS_RESOURCE a container gets no more than podman has: its hard limits,
    # and for processes no more than pid_max (podman holds itself there).
    nofile = hard_limit(resource.RLIMIT_NOFILE, 1048576)
    nproc = hard_limit(resource.RLIMIT_NPROC, int(Path("/proc/sys/kernel/pid_max").read_text()))
    return f"""\
# Written by the template's tests (tests/harness/podman.py).
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
[engine]
# crun refuses hybrid cgroups; no systemd for cgroups or the event journal.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
"""


def hard_limit(limit, ceiling):
    value = resource.getrlimit(limit)[1]
    return ceiling if value == resource.RLIM_INFINITY else min(value, ceiling)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api_version(path):
    """The API version the Docker API on a Unix socket reports, or None if it does not answer."""
    try:
        connection = UnixHTTPConnection(str(path))
        connection.request("GET", "/version")
        return json.loads(connection.getresponse().read())["ApiVersion"]
    except (OSError, ValueError, KeyError):
        return None


def wait_until(condition, timeout, what, log):
    if not poll(condition, timeout):
        raise Unavailable(f"{what} did not happen within {timeout} s:\n{log.read_text()[-2000:]}")


class HealthChecks(threading.Thread):
    """`podman healthcheck run` for every running container with a health check: every 2 s
    while it is starting (like Compose's start_interval), then at its own interval."""

    def __init__(self, engine):
        super().__init__(daemon=True)
        self.engine = engine
        self.stopping = threading.Event()
        self.last, self.intervals, self.checks = {}, {}, {}

    def run(self):
        while not self.stopping.wait(2):
            listed = self.engine.run(
                "ps", "--filter=status=running", "--format={{.ID}} {{.Status}}", check=False
            )
            for line in listed.stdout.splitlines():
                container, _, status = line.partition(" ")
                try:
                    if status.endswith(")") and self.due(container, starting=status.endswith("(starting)")):
                        self.start_check(container)
                except (AssertionError, subprocess.SubprocessError):
                    pass  # the container went away meanwhile

    def start_check(self, container):
        self.checks[container] = subprocess.Popen(
            [self.engine.cli, "healthcheck", "run", container],
            env=self.engine.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.last[container] = time.monotonic()

    def due(self, container, starting):
        if (check := self.checks.get(container)) and check.poll() is None:
            return False
        if container not in self.intervals:
            config = self.engine.inspect(container)["Config"].get("Healthcheck") or {}
            self.intervals[container] = (config.get("Interval") or 30e9) / 1e9
        interval = 2 if starting else self.intervals[container]
        return time.monotonic() - self.last.get(container, 0) >= interval

    def stop(self):
        self.stopping.set()
        self.join()
        for check in self.checks.values():
            if check.poll() is None:
                check.kill()
            check.wait()


class Podman(Engine):
    build_options = ("--format=docker",)  # only Docker's image format keeps HEALTHCHECK

    @classmethod
    def start(cls, workdir):
        if shutil.which("podman") is None:
            raise Unavailable(
                "no Docker engine answers and podman is not installed (scripts/test-needs installs it)"
            )
        conf = workdir / "containers.conf"
        conf.write_text(settings())
        engine = cls("podman", env={"CONTAINERS_CONF": str(conf)})
        engine.ip_forward = IP_FORWARD.read_text()
        engine.processes = []
        try:
            engine.run("info", timeout=60)
            engine.serve(workdir)
        except (AssertionError, subprocess.TimeoutExpired, Unavailable) as error:
            engine.close()
            raise Unavailable(f"podman cannot run containers here: {error}") from error
        return engine

    def serve(self, workdir):
        """podman's Docker API on a socket of its own, the proxy Compose talks to, health checks."""
        podman, docker, log = workdir / "podman.sock", workdir / "docker.sock", workdir / "podman.log"
        self.spawn(["podman", "system", "service", "--time=0", f"unix://{podman}"], log)
        wait_until(lambda: api_version(podman), 30, "podman's API answering", log)
        self.spawn([sys.executable, HERE / "api_version_proxy.py", docker, podman], workdir / "proxy.log")
        wait_until(lambda: api_version(docker) == "1.44", 10, "the API proxy answering", log)
        self.compose_env.update(DOCKER_HOST=f"unix://{docker}", COMPOSE_BAKE="false", DOCKER_BUILDKIT="0")
        self.health_checks = HealthChecks(self)
        self.health_checks.start()

    def spawn(self, command, log):
        with log.open("ab") as output:
            self.processes.append(
                subprocess.Popen(command, env=self.env, stdout=output, stderr=subprocess.STDOUT)
            )

    def close(self):
        if hasattr(self, "health_checks"):
            self.health_checks.stop()
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        IP_FORWARD.write_text(self.ip_forward)
