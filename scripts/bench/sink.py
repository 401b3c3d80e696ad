"""An SMTP server that accepts every message after a set delay, in a process of its own;
or one that behaves like an email provider's submission server (`ProviderSink`).

It keeps no messages, only how many it accepted, when it accepted the first and the
last one (time.monotonic(), which every process of the machine shares) and how many
connections it took.
"""

import asyncio
import logging
import multiprocessing
import secrets
import ssl
import tempfile
import time
from pathlib import Path

import procfs
from aiosmtpd.smtp import SMTP, AuthResult

# Its own interpreter: the sink must not share a GIL with whatever it measures.
SPAWN = multiprocessing.get_context("spawn")


class Sink:
    def __init__(self, port, delay_ms, provider=None, env=None):
        self.port = port
        self.env = env or {}  # what the site needs to reach it
        self.delay_ms = delay_ms
        self.accepted = SPAWN.Value("q", 0)
        self.connections = SPAWN.Value("q", 0)
        self.first_accepted = SPAWN.Value("d", 0.0)
        self.last_accepted = SPAWN.Value("d", 0.0)
        self._ready = SPAWN.Event()
        counters = (self.accepted, self.connections, self.first_accepted, self.last_accepted)
        self._process = SPAWN.Process(
            target=serve, args=(port, delay_ms / 1000, counters, self._ready, provider), daemon=True
        )

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def cpu_seconds(self):
        return procfs.cpu_seconds(self._process.pid)

    def reset(self):
        with self.accepted.get_lock():
            self.accepted.value = self.connections.value = 0
            self.first_accepted.value = self.last_accepted.value = 0.0

    def __enter__(self):
        self._process.start()
        deadline = time.monotonic() + 30
        while not self._ready.wait(0.1):
            if not self._process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the SMTP sink on port {self.port} did not start")
        return self

    def __exit__(self, *exc):
        self._process.terminate()
        self._process.join()


class ProviderSink(Sink):
    """Like a provider's submission server: STARTTLS with a certificate of a CA made for the
    run (the site trusts it through SSL_CERT_FILE), AUTH required, 20 ms before every
    answer, 100 ms more on DATA, and at most 20 connections from a client at once (421 for
    the next one)."""

    COMMAND_MS, DATA_MS, CONNECTIONS = 20, 100, 20

    def __init__(self, port):
        import trustme  # make bench's own requirement (requirements-bench.txt), as matplotlib

        self._files = tempfile.TemporaryDirectory(prefix="bench-ca-")
        folder = Path(self._files.name)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(folder / "ca.pem")
        certificate = ca.issue_cert("127.0.0.1")
        certificate.private_key_and_cert_chain_pem.write_to_path(folder / "server.pem")
        self.password = secrets.token_urlsafe(16)
        provider = {"chain": str(folder / "server.pem"), "password": self.password}
        super().__init__(port, self.DATA_MS, provider, env={"SSL_CERT_FILE": str(folder / "ca.pem")})

    @property
    def url(self):
        return f"smtp+tls://bench:{self.password}@127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._files.cleanup()


class Handler:
    def __init__(self, delay, counters):
        self.delay = delay
        self.accepted, self.connections, self.first_accepted, self.last_accepted = counters
        self.open = 0  # connections open now

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.accepted.get_lock():
            now = time.monotonic()
            if not self.accepted.value:
                self.first_accepted.value = now
            self.accepted.value += 1
            self.last_accepted.value = now
        return "250 Message accepted for delivery"


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        if self.transport is None:  # a new connection, not its switch to TLS
            self.event_handler.open += 1
            with self.event_handler.connections.get_lock():
                self.event_handler.connections.value += 1
        super().connection_made(transport)

    def connection_lost(self, error):
        self.event_handler.open -= 1
        super().connection_lost(error)


class ProviderSMTP(CountingSMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        self.too_many = self.event_handler.open > ProviderSink.CONNECTIONS

    async def push(self, status):
        await asyncio.sleep(ProviderSink.COMMAND_MS / 1000)
        if self.too_many:
            await super().push("421 4.7.0 Too many connections from your address")
            self.transport.close()
        else:
            await super().push(status)


def serve(port, delay, counters, ready, provider):
    # aiosmtpd logs a warning about its own use of a deprecated attribute at every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    handler = Handler(delay, counters)
    if provider:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(provider["chain"])

        def authenticate(server, session, envelope, mechanism, auth_data):
            login = (auth_data.login, auth_data.password)
            return AuthResult(success=login == (b"bench", provider["password"].encode()))

        def make():
            return ProviderSMTP(
                handler,
                hostname="provider.bench",
                tls_context=context,
                require_starttls=True,
                authenticator=authenticate,
                auth_required=True,
            )
    else:

        def make():
            return CountingSMTP(handler, hostname="sink.bench")

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(make, "127.0.0.1", port, backlog=1024)
        ready.set()
        await server.serve_forever()

    asyncio.run(main())
