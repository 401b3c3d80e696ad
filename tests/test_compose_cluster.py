"""compose.cluster.yaml brought up for real over compose.yaml and compose.override.yaml: three
RabbitMQ nodes that form one cluster, the site's quorum queue on all three, and mail that
still goes when the node leading the queue is killed."""

import json
import os
import signal
import time

import pytest
from harness.baked_site import bake, env_file
from harness.compose_site import ComposeSite, brought_up
from harness.containers import CONTAINERS
from harness.figures import report
from harness.processes import wait_for

pytestmark = CONTAINERS
FILES = ("compose.yaml", "compose.override.yaml", "compose.cluster.yaml")
NODES = ("rabbitmq", "rabbitmq2", "rabbitmq3")


@pytest.fixture(scope="module")
def cluster(engine, stand_ins, tmp_path_factory):
    site = ComposeSite(bake(tmp_path_factory.mktemp("compose-cluster")), engine, files=FILES)
    with brought_up(site, "compose cluster"):
        yield site


def members(site, node="rabbitmq"):
    """The site's queue: its type, and the nodes that hold a copy and are online (nothing while
    rabbitmqctl cannot list it)."""
    queue = site.queue("type", "members", "online", node=node, check=False)
    return queue.get("type"), sorted(queue.get("members", [])), sorted(queue.get("online", []))


def test_up_wait_forms_one_cluster_and_puts_the_quorum_queue_on_every_node(cluster):
    states = cluster.states()
    healthy = {name: state["Health"] for name, state in states.items() if name != "migrate"}
    assert healthy == dict.fromkeys([*NODES, "postgres", "mailpit", "web", "worker", "sweeper"], "healthy")
    everyone = [f"rabbit@{node}" for node in NODES]

    # On a busy machine the queue's copies may still be electing a leader after up: rabbitmqctl
    # then calls the queue unresponsive, for a while.
    def on_every_node():
        return members(cluster, node="rabbitmq3") == ("quorum", everyone, everyone)

    wait_for(on_every_node, 180, "the quorum queue listed with a copy online on every node")


def test_only_the_nodes_hold_the_erlang_cookie_and_the_cluster_has_no_administrator(cluster):
    env = env_file(cluster.site)
    assert cluster.holders(env["RABBITMQ_ERLANG_COOKIE"]) == set(NODES)
    for node in NODES:
        listed = cluster.exec(node, "rabbitmqctl", "-q", "list_users", "--formatter=json").stdout
        users = {user["user"]: user["tags"] for user in json.loads(listed)}
        assert users == {env["RABBITMQ_USER"]: [], "flower": ["management"]}, node


def test_mail_still_goes_when_the_node_leading_the_queue_is_killed(cluster):
    assert cluster.send_test_mail("ada@example.com").returncode == 0
    leader = cluster.queue("leader")["leader"].removeprefix("rabbit@")
    survivor = next(node for node in NODES if node != leader)

    killed_at = time.monotonic()
    os.kill(cluster.container(leader)["State"]["Pid"], signal.SIGKILL)  # a crash, from the host
    result = cluster.send_test_mail("bob@example.com", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_for(lambda: "bob@example.com" in cluster.caught(), 30, "the second mail in the catcher")
    took = time.monotonic() - killed_at
    report(f"[compose cluster] {leader}, the queue's leader, killed: the next mail sent in {took:.0f} s")
    assert cluster.statuses() == {"ada@example.com": "sent", "bob@example.com": "sent"}

    # compose restarts the node; it rejoins, and the queue has its three copies again.
    everyone = [f"rabbit@{node}" for node in NODES]
    wait_for(
        lambda: cluster.container(leader)["State"]["Health"]["Status"] == "healthy", 180, f"{leader} healthy"
    )

    def every_copy_online():
        return members(cluster, node=survivor)[2] == everyone

    wait_for(every_copy_online, 60, "every copy of the queue online")
