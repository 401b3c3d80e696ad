"""A real SMTP server, in the process that starts it, keeping every message it accepts."""

import asyncio
import socket
import time
from collections import Counter
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class SmtpCatcher:
    """`delay` seconds pass between the end of a message and the server's answer,
    like a server that checks each message before it accepts it. Recipients whose
    address starts with "reject" are refused for good (550)."""

    def __init__(self, delay=0.0, port=None):
        self.delay = delay
        self.messages = []
        self.received = []  # each message's bytes, as they came over the wire
        self.recipients_asked = []  # every RCPT TO address, refused ones too
        self.arrived_at = []  # time.time() of each message, in order
        self.peers = []  # the client's (address, port) of each message: its connection
        self.controller = Controller(self, hostname="127.0.0.1", port=port or free_port())

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.recipients_asked.append(address)
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        self.received.append(envelope.original_content)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.arrived_at.append(time.time())
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"

    def lost_and_duplicates(self, expected):
        """How many of the `expected` Message-IDs never arrived, and how many arrivals were
        a second (or later) copy."""
        arrived = Counter(message["Message-ID"] for message in self.messages)
        return len(set(expected) - set(arrived)), sum(count - 1 for count in arrived.values())

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.controller.port}"

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
