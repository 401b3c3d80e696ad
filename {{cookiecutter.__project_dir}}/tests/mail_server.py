"""A real SMTP server for the site's tests, in the test's process, keeping what it received."""

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from django.conf import settings


class MailServer:
    """An SMTP server on 127.0.0.1 (aiosmtpd, https://aiosmtpd.aio-libs.org) that accepts
    every mail and keeps it: `raw` (the bytes the client sent), `messages` (those bytes
    parsed, as email.message.EmailMessage), `envelopes` (aiosmtpd's Envelope: mail_from,
    rcpt_tos)."""

    def __init__(self):
        self.envelopes = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def raw(self):
        return [envelope.original_content for envelope in self.envelopes]

    @property
    def messages(self):
        return [message_from_bytes(raw, policy=policy.default) for raw in self.raw]

    @property
    def mailer(self):
        """The site's SMTP mailer (MAILERS), pointed at this server."""
        backend = f"{settings.SITE_PACKAGE}.delivery.smtp.EmailBackend"
        options = {"host": "127.0.0.1", "port": self.controller.port, "timeout": 10}
        return {"BACKEND": backend, "OPTIONS": options}

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
