"""A fresh RabbitMQ virtual host and PostgreSQL database on the machine's servers, removed after."""

import contextlib
import subprocess
import uuid

from kombu import Connection


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def rabbitmq_vhost():
    """Yield the AMQP URL of a new virtual host."""
    vhost = f"bench-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def postgres_database():
    """Yield the URL of a new database."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    server = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["createdb", *server, name], check=True, capture_output=True, timeout=60)
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run(["dropdb", *server, "--force", name], check=True, capture_output=True, timeout=60)


def purge_queue(broker_url, queue):
    """Drop the messages waiting in `queue`, if it exists."""
    with Connection(broker_url) as connection, contextlib.suppress(connection.channel_errors):
        connection.default_channel.queue_purge(queue)


def consumers(broker_url, queue):
    """How many consumers `queue` has (0 if it does not exist yet)."""
    with Connection(broker_url) as connection:
        try:
            return connection.default_channel.queue_declare(queue, passive=True).consumer_count
        except connection.channel_errors:
            return 0
