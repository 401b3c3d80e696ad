"""A baked site and the processes it runs, with this virtualenv's Python; its .env; its web answers."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from . import bakery, processes
from .processes import wait_for

BIN = Path(sys.executable).parent
# Scripts the tests run inside a baked site.
SCRIPTS = bakery.TEMPLATE / "tests" / "site"


def bake(output_dir, **answers):
    return Site(bakery.bake(output_dir, **answers))


class Site:
    """A baked site, its commands run with this virtualenv's Python."""

    def __init__(self, path):
        self.path = path
        self.env = {}
        self.processes = []

    def environ(self, extra=None):
        return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **self.env, **(extra or {})}

    def run(self, *args, env=None, check=True, timeout=300):
        return processes.run(args, check=check, timeout=timeout, cwd=self.path, env=self.environ(env))

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


def set_env_file(site, **values):
    """Set variables in the site's .env, the way an admin edits it for production."""
    env = site.path / ".env"
    text = env.read_text()
    for name, value in values.items():
        line = f"{name}={value}"
        text, found = re.subn(rf"(?m)^{name}=.*$", lambda _, line=line: line, text)
        if not found:
            text += f"{name}={value}\n"
    env.write_text(text)


def env_file(site):
    """The variables the site's .env sets."""
    lines = (site.path / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


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
