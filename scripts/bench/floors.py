"""What a request that writes a mail durably has to wait for on this machine, measured bare:
a one-row commit on each database, and a publish to RabbitMQ that waits for its confirm."""

import sqlite3
import tempfile
import time
from pathlib import Path

import psycopg
from kombu import Connection, Exchange, Producer, Queue
from scenarios import percentile


def floors(postgres_url, broker_url, count):
    rows = []
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE bench_floor (id serial PRIMARY KEY, body text)")
        try:
            rows.append(
                timed("PostgreSQL: INSERT one row + COMMIT", count, lambda: commit_postgres(connection))
            )
        finally:
            connection.execute("DROP TABLE bench_floor")
    with tempfile.TemporaryDirectory() as folder:
        # The pragmas of the site's SQLite settings.
        connection = sqlite3.connect(Path(folder) / "floor.sqlite3", isolation_level=None)
        connection.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        connection.execute("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, body TEXT)")
        rows.append(timed("SQLite (WAL): INSERT one row + COMMIT", count, lambda: commit_sqlite(connection)))
        connection.close()
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        queue = Queue("bench_floor", Exchange("bench_floor", "direct"), "bench_floor", durable=True)
        channel = connection.default_channel
        queue(channel).declare()
        producer = Producer(channel, exchange=queue.exchange, routing_key="bench_floor")
        body = {"message": "x" * 1000}
        for mode, name in ((2, "persistent"), (1, "transient")):
            what = f"RabbitMQ: publish a {name} message, wait for the confirm"
            rows.append(timed(what, count, lambda mode=mode: producer.publish(body, delivery_mode=mode)))
        queue(channel).delete()
    return rows


def commit_postgres(connection):
    with connection.transaction():
        connection.execute("INSERT INTO bench_floor (body) VALUES ('mail')")


def commit_sqlite(connection):
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO bench_floor (body) VALUES ('mail')")
    connection.execute("COMMIT")


def timed(what, count, operation):
    costs = []
    for _ in range(count):
        began = time.perf_counter()
        operation()
        costs.append((time.perf_counter() - began) * 1000)
    costs.sort()
    return {"what": what, "count": count, "p50_ms": percentile(costs, 50), "p99_ms": percentile(costs, 99)}
