"""Fixtures for tests that run containers: the engine, the stand-in images, RabbitMQ 4.

A test that uses them carries the CONTAINERS mark (containers.py), so that they all run on one
xdist worker, one after another; `any_rabbitmq` marks its container half itself."""

import time

import pytest
from conftest import bake, cannot_run, report
from harness.containers import CONTAINERS, Unavailable, docker_engine
from harness.rabbitmq_containers import rabbitmq_node
from harness.stand_ins import build_stand_ins


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """Docker if a Docker engine answers, else podman; skips loudly (fails under CI) if neither runs."""
    try:
        if not (found := docker_engine()):
            from harness.podman import Podman

            found = Podman.start(tmp_path_factory.mktemp("podman"))
    except Unavailable as error:
        cannot_run(f"containers cannot run: {error}", "containers")
    yield found
    found.close()


@pytest.fixture(scope="session")
def stand_ins(engine, tmp_path_factory):
    """{stand-in: (image, "built" or "cached")} for every image a default bake uses."""
    started = time.monotonic()
    site = bake(tmp_path_factory.mktemp("images"))
    made = build_stand_ins(engine, site, tmp_path_factory.mktemp("contexts"))
    seconds = time.monotonic() - started
    what = ", ".join(f"{name} {how}" for name, (_, how) in made.items())
    report(f"[containers] stand-in images in {seconds:.0f} s: {what}")
    return made


@pytest.fixture(scope="session")
def rabbitmq4_node(engine, stand_ins):
    """One RabbitMQ 4 container for the whole session."""
    with rabbitmq_node(engine, stand_ins["rabbitmq"][0]) as node:
        yield node


@pytest.fixture
def rabbitmq4(rabbitmq4_node):
    """A fresh virtual host on the RabbitMQ 4 container; yields its URL, as `rabbitmq` does."""
    with rabbitmq4_node.vhost() as url:
        yield url


@pytest.fixture(
    params=["rabbitmq", pytest.param("rabbitmq4", marks=CONTAINERS)],
    ids=["rabbitmq-3.10-machine", "rabbitmq-4-container"],
)
def any_rabbitmq(request):
    """A fresh virtual host on the machine's RabbitMQ (3.10), then on RabbitMQ 4 in a container."""
    return request.getfixturevalue(request.param)
