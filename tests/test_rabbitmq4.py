"""RabbitMQ 4 in a container: a baked site delivers on it as on the machine's 3.10, the
container refuses what RabbitMQ 4.3 refuses, and a mail whose message the quorum queue drops
at its delivery limit still goes. The broker is the stand-in, RabbitMQ 4.0.5 of Debian
trixie; test_cluster.py runs three of them."""

import json
import socket

import amqp
import pytest
from harness.containers import ONE_AT_A_TIME
from harness.processes import wait_for


def test_a_test_mail_goes_through_either_rabbitmq(site, any_rabbitmq, smtp_server):
    site.env = {"CELERY_BROKER_URL": any_rabbitmq, "EMAIL_URL": smtp_server.url}
    site.start_worker()

    sent = site.manage("send_test_mail", "ada@example.com", "--timeout", "30")

    assert "sent" in sent.stdout
    assert [message["To"] for message in smtp_server.messages] == ["ada@example.com"]


@pytest.mark.containers
@ONE_AT_A_TIME
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


@pytest.mark.containers
@ONE_AT_A_TIME
def test_a_mail_whose_task_rabbitmq_drops_at_the_delivery_limit_is_sent_by_the_sweeper(
    site, rabbitmq4_node, smtp_server
):
    """RabbitMQ 4 drops a quorum queue's message returned more often than its delivery limit
    (20; here 0): the mail stays `sending`, and the sweeper hands it out again."""
    silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
    with rabbitmq4_node.vhost() as url, silent:
        vhost = url.rsplit("/", 1)[1]
        site.env = {
            "CELERY_BROKER_URL": url,
            "RABBITMQ_QUEUE_TYPE": "quorum",
            "EMAIL_URL": f"smtp://127.0.0.1:{silent.getsockname()[1]}",
            "MAIL_SENDING_TIMEOUT": "5",
        }
        site.stop(site.start_worker(name="declare"))  # the site's queue, declared by its worker
        policy = json.dumps({"delivery-limit": 0})
        rabbitmq4_node.ctl("set_policy", "-p", vhost, "--apply-to", "quorum_queues", "limit", ".*", policy)

        site.script("send.py", "--plain", "1")
        worker = site.start_worker()
        wait_for(lambda: site.statuses() == {"sending": 1}, 30, "the worker holding the mail")
        site.stop(worker)  # kill -9: its message goes back to the queue, once too often
        wait_for(
            lambda: rabbitmq4_node.queue(vhost, "acme_mail", "messages")["messages"] == 0,
            30,
            "RabbitMQ to drop the message",
        )
        assert site.statuses() == {"sending": 1}

        site.env["EMAIL_URL"] = smtp_server.url
        site.start_worker(name="replacement")
        site.start("deploy/bin/sweep", env={"SWEEP_INTERVAL": "1"}, log="sweeper.log")
        wait_for(lambda: site.statuses() == {"sent": 1}, 60, "the mail sent after the sweeper's hand-out")
        assert len(smtp_server.messages) == 1
