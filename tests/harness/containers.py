"""The container engine the tests run images on: a Docker engine if one answers, else podman
from Debian (scripts/test-needs installs it), set up for this machine by files written at run time
(see podman.py). Tests that use it run in one xdist group, one at a time (CONTAINERS)."""

import json
import os
import shutil
import subprocess

import pytest

from .processes import run

# One xdist worker runs these one after another: the tests that start containers, and those
# whose timing a container build beside them would upset (a told rate limit held to a second).
ONE_AT_A_TIME = pytest.mark.xdist_group("one-at-a-time")
CONTAINERS = [ONE_AT_A_TIME, pytest.mark.containers]


class Unavailable(Exception):
    """No container engine can run here; the message says why."""


class Engine:
    """A Docker-compatible command line (`docker` or `podman`) and what Compose needs to use
    the same engine."""

    def __init__(self, cli, env=None, compose_env=None):
        self.cli = cli
        self.env = {**os.environ, **(env or {})}
        self.compose_env = {**self.env, **(compose_env or {})}

    def run(self, *args, check=True, timeout=300, input=None):
        return run([self.cli, *args], check=check, timeout=timeout, input=input, env=self.env)

    def inspect(self, name):
        """`inspect` of one container or image, as a dict."""
        return json.loads(self.run("inspect", name).stdout)[0]

    def image_label(self, image, label):
        """The value of an image's label, or None without the image or the label."""
        result = self.run("image", "inspect", image, check=False)
        if result.returncode:
            return None
        return (json.loads(result.stdout)[0]["Config"].get("Labels") or {}).get(label)

    def build(self, context, tags, labels):
        options = [f"--tag={tag}" for tag in tags] + [f"--label={k}={v}" for k, v in labels.items()]
        self.run("build", "--quiet", *self.build_options, *options, context, timeout=900)

    build_options = ()

    def close(self):
        pass


def docker_engine():
    """The Docker engine, if one answers."""
    if shutil.which("docker") is None:
        return None
    try:
        answered = subprocess.run(["docker", "version"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        answered = False
    return Engine("docker") if answered else None
