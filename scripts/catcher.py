"""A real SMTP server, in the process that starts it, keeping every message it accepts."""

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class SmtpCatcher:
    def __init__(self):
        self.messages = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

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
