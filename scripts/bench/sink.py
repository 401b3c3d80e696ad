"""An SMTP server that accepts every message after a set delay, in a process of its own.

It keeps no messages, only how many it accepted and when it accepted the first
and the last one (time.monotonic(), which every process of the machine shares).
"""

import asyncio
import multiprocessing
import time

import procfs
from aiosmtpd.smtp import SMTP

# Its own interpreter: the sink must not share a GIL with whatever it measures.
SPAWN = multiprocessing.get_context("spawn")


class Sink:
    def __init__(self, port, delay_ms):
        self.port = port
        self.delay_ms = delay_ms
        self.accepted = SPAWN.Value("q", 0)
        self.first_accepted = SPAWN.Value("d", 0.0)
        self.last_accepted = SPAWN.Value("d", 0.0)
        self._ready = SPAWN.Event()
        self._process = SPAWN.Process(
            target=serve,
            args=(port, delay_ms / 1000, self.accepted, self.first_accepted, self.last_accepted, self._ready),
            daemon=True,
        )

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def cpu_seconds(self):
        return procfs.cpu_seconds(self._process.pid)

    def reset(self):
        with self.accepted.get_lock():
            self.accepted.value = 0
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


class Handler:
    def __init__(self, delay, accepted, first_accepted, last_accepted):
        self.delay = delay
        self.accepted = accepted
        self.first_accepted = first_accepted
        self.last_accepted = last_accepted

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


def serve(port, delay, accepted, first_accepted, last_accepted, ready):
    handler = Handler(delay, accepted, first_accepted, last_accepted)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.bench"), "127.0.0.1", port, backlog=1024
        )
        ready.set()
        await server.serve_forever()

    asyncio.run(main())
