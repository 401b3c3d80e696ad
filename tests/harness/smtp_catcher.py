"""A real SMTP server, in the process that starts it, keeping every message it accepts."""

import asyncio
import bisect
import socket
import time
from collections import Counter
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

THROTTLED = "454 4.7.0 Throttling failure: Maximum sending rate exceeded."
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address"


class SmtpCatcher:
    """`delay` seconds pass between the end of a message and the server's answer,
    like a server that checks each message before it accepts it. Recipients whose
    address starts with "reject" are refused for good (550).

    Limits as providers set them: `per_second`, the messages it accepts in any one second,
    answering the next as Amazon SES does (454 Throttling failure); `max_connections`, the
    connections it takes at once, greeting the next with 421 and closing it."""

    def __init__(self, delay=0.0, port=None, per_second=None, max_connections=None):
        self.delay = delay
        self.per_second = per_second
        self.max_connections = max_connections
        self.messages = []
        self.received = []  # each message's bytes, as they came over the wire
        self.recipients_asked = []  # every RCPT TO address, refused ones too
        self.arrived_at = []  # time.time() of each message, in order
        self.peers = []  # the client's (address, port) of each message: its connection
        self.throttled_at = []  # time.time() of each throttling answer
        self.open = 0  # connections open now
        self.most_open = 0  # the most connections it took at once
        self.connections_refused = 0
        self.controller = LimitedController(self, hostname="127.0.0.1", port=port or free_port())

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.recipients_asked.append(address)
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        now = time.time()
        if self.per_second is not None and self.in_second_before(now) >= self.per_second:
            self.throttled_at.append(now)
            return THROTTLED
        self.received.append(envelope.original_content)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.arrived_at.append(time.time())
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"

    def in_second_before(self, moment):
        """Messages accepted in the second up to `moment`."""
        return in_second_before(self.arrived_at, moment)

    def most_in_any_second(self):
        """The most messages accepted in any one-second window."""
        return most_in_any_second(self.arrived_at)

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


class LimitedController(Controller):
    def factory(self):
        return LimitedSMTP(self.handler, **self.SMTP_kwargs)


class LimitedSMTP(SMTP):
    """Counts the connections open; refuses those beyond the catcher's max_connections."""

    too_many = False

    def connection_made(self, transport):
        catcher = self.event_handler
        if self.transport is None:  # a new connection, not its switch to TLS
            catcher.open += 1
            self.too_many = catcher.max_connections is not None and catcher.open > catcher.max_connections
            if self.too_many:
                catcher.connections_refused += 1
            else:
                catcher.most_open = max(catcher.most_open, catcher.open)
        super().connection_made(transport)

    def connection_lost(self, error):
        self.event_handler.open -= 1
        super().connection_lost(error)

    async def push(self, status):
        if self.too_many:
            await super().push(TOO_MANY_CONNECTIONS)
            self.transport.close()
        else:
            await super().push(status)


def in_second_before(moments, moment):
    """How many of `moments` (in order) fall in the second up to `moment`, `moment` included."""
    return bisect.bisect_right(moments, moment) - bisect.bisect_right(moments, moment - 1.0)


def most_in_any_second(moments):
    """The most of `moments` (in order) in any one-second window."""
    return max((in_second_before(moments, moment) for moment in moments), default=0)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
