"""A TCP proxy the tests control, to make outages of a real service without stopping it."""

import contextlib
import socket
import threading
import time

from .smtp_catcher import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a service until cut.

    `cut()` drops every connection and refuses new ones, like a server that is
    down; `hang()` accepts connections and never answers, like a server behind a
    dead network path; `restore()` accepts and forwards again on the same port.
    `hung` lists (accepted, closed by the client) monotonic times of each connection
    that met a hang; closed is None while the client still waits.
    """

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.lock = threading.Lock()
        self.connections = []
        self.listener = None
        self.hung = []

    def __enter__(self):
        self.restore()
        return self

    def __exit__(self, *exc):
        self.cut()

    def restore(self):
        self._listen(forward=True)

    def hang(self):
        self.cut()
        self._listen(forward=False)

    def _listen(self, forward):
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener, forward), daemon=True).start()

    def cut(self):
        with self.lock:
            listener, self.listener = self.listener, None
            connections, self.connections = self.connections, []
        if listener:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener, forward):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if not forward:
                with self.lock:
                    self.connections.append(client)
                    self.hung.append([time.monotonic(), None])
                    attempt = self.hung[-1]
                threading.Thread(target=self._until_closed, args=(client, attempt), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _until_closed(client, attempt):
        """Read and drop what a client sends to a hung port; note when it gives up."""
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass
        attempt[1] = time.monotonic()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
