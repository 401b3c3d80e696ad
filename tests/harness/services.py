"""A fresh RabbitMQ virtual host and PostgreSQL database on the machine's servers, removed after;
what RabbitMQ says of a queue.

Used by the template's tests and by `make bench`.
"""

import contextlib
import json
import uuid

import psycopg

from .processes import run

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def rabbitmqctl(*args):
    """rabbitmqctl on this machine; its output."""
    return run(["rabbitmqctl", "-q", *args], timeout=120).stdout


def queue_fields(rabbitmqctl, vhost, queue, *fields):
    """`fields` of a queue as `rabbitmqctl list_queues` gives them ({} if there is no such queue);
    `rabbitmqctl(*args)` runs it where the broker is (here, in a container) and returns its output."""
    listing = json.loads(rabbitmqctl("list_queues", "-p", vhost, "name", *fields, "--formatter=json"))
    return next((entry for entry in listing if entry["name"] == queue), {})


@contextlib.contextmanager
def rabbitmq_vhost(prefix):
    """Yield the AMQP URL of a new virtual host."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def postgres_database(prefix):
    """Yield the URL of a new database."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
