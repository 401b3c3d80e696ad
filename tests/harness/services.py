"""A fresh RabbitMQ virtual host and PostgreSQL database on the machine's servers, removed after.

Used by the template's tests and by `make bench`.
"""

import contextlib
import subprocess
import uuid

import psycopg

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


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
