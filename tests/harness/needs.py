"""What a test needs from the machine, and the one way a test says it lacks it: cannot_run()."""

import os
import socket

import pytest

# What a test may lack, by the names SKIP takes (scripts/test-needs provides each).
NEEDS = ("rabbitmq", "postgresql", "root", "containers", "chromium", "network", "prometheus")
# The test running now (conftest sets it): require_service and require_root fail a test that
# is not marked for the tier they need.
running = None


def cannot_run(message, need):
    """Fail: the test lacks `need`. It skips only when asked by name (SKIP=need,...), never
    under CI=true; the run's summary counts the skips and says why."""
    assert need in NEEDS, need
    asked = os.environ.get("SKIP", "").split(",")
    if os.environ.get("CI") == "true" or need not in asked:
        pytest.fail(f"{message} (scripts/test-needs provides it; or SKIP={need} make test)")
    pytest.skip(f"SKIP={need}: {message}")


def service_answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def in_tier(tier):
    """Fail the running test unless it carries the marker of `tier` (pyproject.toml lists them)."""
    if running is not None and running.get_closest_marker(tier) is None:
        pytest.fail(f"{running.nodeid} needs the {tier} tier: mark it @pytest.mark.{tier}")


def require_service(name, port):
    in_tier("services")
    if not service_answers(port):
        cannot_run(f"{name} is not reachable on 127.0.0.1:{port}; this test needs it", name.lower())


def require_root(why):
    """The few tests that change the machine (users, namespaces, the broker's vhosts) need root."""
    in_tier("root")
    if os.geteuid() != 0:
        cannot_run(f"this test needs root: {why}", "root")
