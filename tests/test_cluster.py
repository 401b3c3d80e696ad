"""A three-node RabbitMQ 4 cluster under the site's quorum queue: the queue's leader killed with
kill -9, then the node the worker is connected to, then every node stopped for 30 s. Each
scenario prints mails, lost, duplicates and the pause in delivery."""

import time

import pytest
from harness.baked_site import bake
from harness.containers import CONTAINERS
from harness.figures import report
from harness.processes import wait_for
from harness.rabbitmq_containers import rabbitmq_cluster
from harness.smtp_catcher import SmtpCatcher

pytestmark = CONTAINERS
MAILS = 2000
# The sweeper hands out again, soon, what a lost node or a dead worker left behind.
TIMEOUTS = {"MAIL_SENDING_TIMEOUT": "10", "MAIL_HANDOFF_TIMEOUT": "20", "MAIL_RETRY_INTERVAL": "2"}


@pytest.fixture(scope="module")
def cluster(engine, stand_ins, tmp_path_factory):
    with rabbitmq_cluster(engine, stand_ins["rabbitmq"][0], tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


class ClusterSite:
    """A baked site with a quorum queue on the cluster, a worker, a sweeper and a mail server
    that answers in 50 ms."""

    def __init__(self, site, nodes, vhost, smtp):
        self.site, self.nodes, self.vhost, self.smtp = site, nodes, vhost, smtp
        self.started = time.monotonic()

    def urls(self, first):
        """Celery's failover list, `first` node first."""
        order = [first] + [node for node in self.nodes if node is not first]
        return ";".join(node.url(self.vhost) for node in order)

    def live_node(self):
        return next(node for node in self.nodes if node.answers())

    def leader(self):
        leader = self.live_node().queue(self.vhost, "acme_mail", "leader")["leader"]
        return next(node for node in self.nodes if leader == f"rabbit@{node.hostname}")

    def worker_node(self):
        """The node the worker's consuming channels are on (a channel's pid names it in text
        output): each of its processes connects to the first node of the same failover list."""
        listing = self.live_node().ctl("list_consumers", "-p", self.vhost, "queue_name", "channel_pid")
        pids = [line.split("\t")[1] for line in listing.splitlines() if line.startswith("acme_mail\t")]
        on = [node for node in self.nodes if any(pid.startswith(f"<rabbit@{node.hostname}.") for pid in pids)]
        assert len(on) == 1 and pids, f"the worker's channels: {pids}"
        return on[0]

    def whole_again(self):
        everyone = sorted(f"rabbit@{node.hostname}" for node in self.nodes)
        wait_for(lambda: all(node.answers() for node in self.nodes), 120, "every node answering again")
        wait_for(lambda: self.nodes[0].running_nodes() == everyone, 120, "the cluster whole again")

    def tally(self, scenario, in_flight, pause):
        rows = self.site.script("report.py")
        lost, duplicates = self.smtp.lost_and_duplicates(row["message_id"] for row in rows)
        report(
            f"[cluster: {scenario}] mails={len(rows)} lost={lost} duplicates={duplicates} "
            f"in flight={in_flight} pause={pause:.1f}s time={time.monotonic() - self.started:.0f}s"
        )
        return lost, duplicates


@pytest.fixture
def cluster_site(tmp_path, cluster, postgres):
    site = bake(tmp_path)
    with cluster[0].vhost() as url, SmtpCatcher(delay=0.05) as smtp:
        vhost = url.rsplit("/", 1)[1]
        site.env = {
            "DATABASE_URL": postgres,
            "EMAIL_URL": smtp.url,
            "RABBITMQ_QUEUE_TYPE": "quorum",
            **TIMEOUTS,
        }
        path = ClusterSite(site, cluster, vhost, smtp)
        site.env["CELERY_BROKER_URL"] = path.urls(cluster[0])
        site.manage("migrate", "--verbosity", "0")
        yield path
        site.stop_all()


def backlog_then_workers(path, worker_first):
    """MAILS mails waiting in the queue (declared through r1, which leads it), then a worker
    connected to `worker_first` and a sweeper."""
    path.site.start_worker(name="declare")  # declares the queue through r1, then stops
    path.site.stop(path.site.processes[-1])
    path.site.script("send.py", "--plain", str(MAILS))
    path.site.start_worker(env={"CELERY_BROKER_URL": path.urls(worker_first)})
    path.site.start("deploy/bin/sweep", env={"SWEEP_INTERVAL": "2"}, log="sweeper.log")


def kill_and_measure(path, victim, scenario):
    wait_for(lambda: len(path.smtp.messages) >= 300, 120, "300 mails delivered")
    in_flight = path.site.statuses().get("sending", 0)
    killed_at = time.time()
    victim.kill()
    wait_for(lambda: path.site.statuses().get("sent", 0) == MAILS, 240, f"all {MAILS} sent after {scenario}")
    after = sorted(moment for moment in path.smtp.arrived_at if moment > killed_at)
    gaps = [b - a for a, b in zip([killed_at, *after], after, strict=False)]
    lost, duplicates = path.tally(scenario, in_flight, max(gaps, default=0))
    path.whole_again()
    return lost, duplicates, in_flight, max(gaps, default=0)


def test_the_queue_leader_killed_loses_no_mail(cluster_site):
    backlog_then_workers(cluster_site, worker_first=cluster_site.nodes[1])
    leader, worker_node = cluster_site.leader(), cluster_site.worker_node()
    assert leader is not worker_node, "the scenario kills the leader, not the worker's node"

    lost, duplicates, in_flight, pause = kill_and_measure(cluster_site, leader, "queue leader killed")

    assert lost == 0
    assert duplicates <= in_flight
    assert pause < 60, f"delivery stopped for {pause:.0f} s"


def test_the_node_the_worker_is_connected_to_killed_loses_no_mail(cluster_site):
    backlog_then_workers(cluster_site, worker_first=cluster_site.nodes[1])
    worker_node = cluster_site.worker_node()
    assert worker_node is not cluster_site.leader()

    lost, duplicates, in_flight, pause = kill_and_measure(cluster_site, worker_node, "worker's node killed")

    assert lost == 0
    assert duplicates <= in_flight
    assert pause < 60, f"delivery stopped for {pause:.0f} s"


def test_every_node_stopped_for_30_seconds_loses_no_mail(cluster_site, engine):
    backlog_then_workers(cluster_site, worker_first=cluster_site.nodes[0])
    wait_for(lambda: len(cluster_site.smtp.messages) >= 300, 120, "300 mails delivered")

    in_flight = cluster_site.site.statuses().get("sending", 0)
    stopped_at = time.time()
    for node in cluster_site.nodes:
        engine.run("stop", "--time=10", node.name)
    cluster_site.site.script("send.py", "--plain", "100", "--tag", " during the outage")
    time.sleep(max(0.0, 30 - (time.time() - stopped_at)))  # the outage lasts 30 s, whatever we do
    for node in cluster_site.nodes:
        engine.run("start", node.name)
    started_at = time.time()

    total = MAILS + 100
    wait_for(lambda: cluster_site.site.statuses().get("sent", 0) == total, 300, f"all {total} sent")
    # The pause: from the nodes' start to the first mail delivered after it.
    resumed = min(moment for moment in cluster_site.smtp.arrived_at if moment > started_at)
    lost, duplicates = cluster_site.tally("every node stopped 30 s", in_flight, resumed - started_at)
    assert lost == 0
    assert duplicates <= in_flight
    cluster_site.whole_again()
