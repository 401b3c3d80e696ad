"""The template tests' fixtures and hooks; what they use lives in tests/harness/."""

import os
import time
from collections import Counter

import pytest
from harness import figures, needs
from harness.baked_site import bake
from harness.containers import CONTAINERS, Unavailable, docker_engine
from harness.deployed_site import deployed, passable_python
from harness.needs import cannot_run, require_root, require_service
from harness.rabbitmq_containers import rabbitmq_node
from harness.services import postgres_database, rabbitmq_vhost
from harness.smtp_catcher import SmtpCatcher
from harness.stand_ins import build_stand_ins

# xdist groups on pytest 9.2.
pytest_plugins = ["harness.xdist_groups"]
# The tiers a test is in by the fixtures it uses (pyproject.toml describes them); a test that
# uses none of these is in the bake tier. `make test-fast` leaves out containers and cluster.
TIERS = {
    "rabbitmq": ("services", "root"),
    "postgres": ("services",),
    "python_view": ("root",),
    "engine": ("containers",),
    "cluster": ("cluster",),
}


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        figures.start()


def pytest_collection_modifyitems(items):
    """Mark every test with its tiers: by its fixtures or by its own markers (CONTAINERS is
    one); bake where it needs no services, containers or cluster."""
    for item in items:
        tiers = {tier for name in item.fixturenames for tier in TIERS.get(name, ())}
        tiers |= {mark.name for mark in item.iter_markers()} & {"services", "containers", "cluster", "root"}
        if not tiers & {"services", "containers", "cluster"}:
            tiers.add("bake")
        for tier in sorted(tiers):
            item.add_marker(tier)


@pytest.fixture(autouse=True)
def running_test(request):
    """The running test, for require_service and require_root to check its tiers."""
    needs.running = request.node
    yield
    needs.running = None


def pytest_terminal_summary(terminalreporter):
    """How many tests were skipped, and why (post_office's suite reports its own skips)."""
    if lines := figures.reported():
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)
    skipped = terminalreporter.stats.get("skipped", [])
    why = Counter(str(report.longrepr[-1]).removeprefix("Skipped: ") for report in skipped)
    terminalreporter.section("skipped", yellow=bool(skipped), green=not skipped)
    for reason, count in why.most_common():
        terminalreporter.write_line(f"{count} skipped: {reason}")
    asked = os.environ.get("SKIP") or "nothing"
    terminalreporter.write_line(f"{len(skipped)} tests skipped (SKIP asked for {asked})")


# --- the machine's services


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


# --- baked sites


@pytest.fixture
def site(tmp_path):
    """A default bake, migrated on SQLite."""
    baked = bake(tmp_path)
    baked.manage("migrate", "--verbosity", "0")
    yield baked
    baked.stop_all()


@pytest.fixture(scope="session")
def python_view():
    """The command prefix under which other users can run this virtualenv's Python."""
    with passable_python() as prefix:
        yield prefix


@pytest.fixture
def deployed_site(postgres, rabbitmq, python_view):
    """A default bake set up as on a server, owned by its own user (harness/deployed_site.py)."""
    require_root("it creates the site's system user and runs processes as that user")
    with deployed(postgres, rabbitmq, python_view) as site:
        yield site


# --- containers: a test that uses them runs on one xdist worker, one after another


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
    figures.report(f"[containers] stand-in images in {seconds:.0f} s: {what}")
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
    params=[
        pytest.param("rabbitmq", marks=[pytest.mark.services, pytest.mark.root]),
        pytest.param("rabbitmq4", marks=CONTAINERS),
    ],
    ids=["rabbitmq-3.10-machine", "rabbitmq-4-container"],
)
def any_rabbitmq(request):
    """A fresh virtual host on the machine's RabbitMQ (3.10), then on RabbitMQ 4 in a container."""
    return request.getfixturevalue(request.param)
