"""RabbitMQ 4 in containers: a baked site delivers on it as on the machine's 3.10, the
container refuses what RabbitMQ 4.3 refuses, and a three-node cluster forms and survives
a node killed with kill -9. The broker is the stand-in, RabbitMQ 4.0.5 of Debian trixie."""

import amqp
import pytest
from conftest import wait_for
from containers import CONTAINERS
from rabbitmq_containers import rabbitmq_cluster


def test_a_test_mail_goes_through_either_rabbitmq(site, any_rabbitmq, smtp_server):
    site.env = {"CELERY_BROKER_URL": any_rabbitmq, "EMAIL_URL": smtp_server.url}
    site.start_worker()

    sent = site.manage("send_test_mail", "ada@example.com", "--timeout", "30")

    assert "sent" in sent.stdout
    assert [message["To"] for message in smtp_server.messages] == ["ada@example.com"]


@CONTAINERS
def test_the_container_refuses_transient_non_exclusive_queues_as_rabbitmq_4_3_does(rabbitmq4):
    """Kombu < 5.7 declared such queues. 4.3 also refuses global QoS, which 4.0.5 accepts even
    when its deprecation is denied: kombu 5.7 uses per-consumer QoS on RabbitMQ 4 anyway."""
    with amqp_connection(rabbitmq4) as connection:
        connection.channel().queue_declare("durable", durable=True, auto_delete=False)
    with amqp_connection(rabbitmq4) as connection, pytest.raises(amqp.exceptions.AMQPError) as refused:
        connection.channel().queue_declare("transient", durable=False, auto_delete=False)
    assert "transient_nonexcl_queues" in str(refused.value)


def amqp_connection(url):
    """py-amqp's connection to an amqp:// URL."""
    credentials, _, rest = url.removeprefix("amqp://").rpartition("@")
    user, _, password = credentials.partition(":")
    host, _, vhost = rest.partition("/")
    connection = amqp.Connection(host, userid=user, password=password, virtual_host=vhost)
    connection.connect()
    return connection


@CONTAINERS
def test_a_three_node_cluster_forms_and_a_node_killed_with_kill_9_rejoins(engine, stand_ins, tmp_path):
    image = stand_ins["rabbitmq"][0]
    with rabbitmq_cluster(engine, image, tmp_path) as (r1, r2, r3):
        everyone = ["rabbit@r1", "rabbit@r2", "rabbit@r3"]
        assert r1.running_nodes() == everyone

        old_pid = r3.kill()
        wait_for(lambda: r1.running_nodes() == ["rabbit@r1", "rabbit@r2"], 60, "r1 to see r3 down")
        # The restart policy brings the container back; the node rejoins by itself.
        wait_for(lambda: engine.inspect(r3.name)["State"]["Pid"] not in (0, old_pid), 60, "r3 restarted")
        wait_for(lambda: r1.running_nodes() == everyone, 90, "r3 running in the cluster again")
        r3.wait_ready()
        assert r2.running_nodes() == everyone
