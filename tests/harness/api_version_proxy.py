"""A Unix-socket proxy in front of podman's Docker API that reports API version 1.44 instead
of 1.41, so that Docker Compose accepts `healthcheck.start_interval` (it asks for Docker
Engine >= 25, API 1.44). podman ignores the field; nothing else is changed.

Run: python api_version_proxy.py LISTEN_SOCKET PODMAN_SOCKET
"""

import asyncio
import sys

# Same lengths, so Content-Length stays right.
REWRITES = [(b'"ApiVersion":"1.41"', b'"ApiVersion":"1.44"'), (b"Api-Version: 1.41", b"Api-Version: 1.44")]


async def pipe(reader, writer, rewrite):
    try:
        while data := await reader.read(65536):
            if rewrite:
                for old, new in REWRITES:
                    data = data.replace(old, new)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # a half-close: `exec` ends its input this way and still reads
    except (ConnectionError, OSError):
        pass


async def main(listen, target):
    async def relay(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, server_writer, rewrite=False),
            pipe(server_reader, client_writer, rewrite=True),
        )
        server_writer.close()
        client_writer.close()

    server = await asyncio.start_unix_server(relay, listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
