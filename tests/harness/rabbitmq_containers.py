"""RabbitMQ 4 in containers of the stand-in image (4.0.5 of Debian trixie, denying what 4.3
denies): one node for the end-to-end and fault tests, or a cluster of three. Each node has
its own published AMQP port on 127.0.0.1; none uses the machine's own node name or ports."""

import contextlib
import json
import os
import secrets
import signal
import uuid

import kombu

from .processes import wait_for
from .services import queue_fields
from .smtp_catcher import free_port

USER = "test"
RABBITMQ_UID = 999  # the rabbitmq user of the official image and of the stand-in


class RabbitMQNode:
    def __init__(self, engine, image, hostname, network=None, cookie=None, password=None):
        self.engine, self.image, self.hostname = engine, image, hostname
        self.name = f"{hostname}-{uuid.uuid4().hex[:8]}"
        self.network, self.cookie = network, cookie
        self.password = password or secrets.token_hex(12)
        self.port = free_port()

    def start(self):
        options = [f"--hostname={self.hostname}", f"--publish=127.0.0.1:{self.port}:5672"]
        if self.network:
            options += [f"--network={self.network}", f"--network-alias={self.hostname}"]
        if self.cookie:
            options.append(f"--volume={self.cookie}:/var/lib/rabbitmq/.erlang.cookie")
        self.engine.run(
            "run", "--detach", f"--name={self.name}", "--restart=unless-stopped", *options,
            f"--env=RABBITMQ_DEFAULT_USER={USER}", f"--env=RABBITMQ_DEFAULT_PASS={self.password}",
            self.image,
        )  # fmt: skip
        return self

    def url(self, vhost=""):
        return f"amqp://{USER}:{self.password}@127.0.0.1:{self.port}/{vhost}"

    def answers(self):
        """True once the node takes AMQP connections from the host."""
        try:
            with kombu.Connection(self.url(), connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=0)
            return True
        except Exception:
            return False

    def wait_ready(self, timeout=90):
        wait_for(self.answers, timeout, f"RabbitMQ in {self.name} to take connections")
        return self

    def ctl(self, *args):
        """rabbitmqctl inside the container; its output."""
        return self.engine.run("exec", self.name, "rabbitmqctl", "-q", *args, timeout=120).stdout

    def queue(self, vhost, name, *fields):
        """`fields` of a queue, as `rabbitmqctl list_queues` gives them."""
        return queue_fields(self.ctl, vhost, name, *fields)

    def start_app(self):
        """rabbitmqctl start_app; True if it started."""
        return (
            self.engine.run("exec", self.name, "rabbitmqctl", "-q", "start_app", check=False).returncode == 0
        )

    def running_nodes(self):
        return sorted(json.loads(self.ctl("cluster_status", "--formatter=json"))["running_nodes"])

    def kill(self):
        """kill -9 of the node's main process, from the host, as a crash would."""
        pid = self.engine.inspect(self.name)["State"]["Pid"]
        os.kill(pid, signal.SIGKILL)
        return pid

    @contextlib.contextmanager
    def vhost(self):
        """A fresh virtual host; yields its AMQP URL."""
        vhost = f"test-{uuid.uuid4().hex[:12]}"
        self.ctl("add_vhost", vhost)
        try:
            self.ctl("set_permissions", "-p", vhost, USER, ".*", ".*", ".*")
            yield self.url(vhost)
        finally:
            self.ctl("delete_vhost", vhost)

    def remove(self):
        self.engine.run("rm", "--force", "--time=10", self.name, check=False)


@contextlib.contextmanager
def rabbitmq_node(engine, image):
    node = RabbitMQNode(engine, image, hostname="rabbitmq4")
    try:
        yield node.start().wait_ready()
    finally:
        node.remove()


@contextlib.contextmanager
def rabbitmq_cluster(engine, image, workdir, size=3):
    """Nodes r1..rN on a network of their own, sharing one Erlang cookie, joined to r1."""
    network = f"rabbitmq-cluster-{uuid.uuid4().hex[:8]}"
    cookie = workdir / "erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    os.chown(cookie, RABBITMQ_UID, RABBITMQ_UID)
    cookie.chmod(0o400)  # a node refuses a cookie that others may read
    engine.run("network", "create", network)
    password = secrets.token_hex(12)  # a node that joins takes the cluster's users
    nodes = [RabbitMQNode(engine, image, f"r{n}", network, cookie, password) for n in range(1, size + 1)]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", f"rabbit@{nodes[0].hostname}")
            # While the cluster settles, 4.0.5 denying transient_nonexcl_queues can refuse
            # start_app (failed_to_deny_deprecated_features) on a busy machine: ask again.
            wait_for(node.start_app, 120, f"{node.name} to start its app in the cluster")
        yield nodes
    finally:
        for node in nodes:
            node.remove()
        engine.run("network", "rm", "--force", network, check=False)
