"""What the benchmark asks RabbitMQ about its queues."""

import contextlib

from kombu import Connection


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
