#!/usr/bin/python3
"""`mailpit`: keep every mail that arrives on :1025 and list them on :8025 the way Mailpit's
GET /api/v1/messages does (newest first). `mailpit readyz` is the health check."""

import json
import signal
import sys
import threading
import urllib.request
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

messages = []  # Mailpit's summaries, oldest first
lock = threading.Lock()


def addresses(header):
    return [{"Name": name, "Address": address} for name, address in getaddresses([header or ""]) if address]


class Catcher:
    async def handle_DATA(self, server, session, envelope):
        mail = message_from_bytes(envelope.content, policy=policy.default)
        body = mail.get_body(("plain", "html"))
        summary = {
            "ID": uuid.uuid4().hex,
            "MessageID": (mail["Message-ID"] or "").strip("<>"),
            "Read": False,
            "From": (addresses(mail["From"]) or [{"Name": "", "Address": envelope.mail_from}])[0],
            "To": addresses(mail["To"]),
            "Cc": addresses(mail["Cc"]),
            "Bcc": [],
            "ReplyTo": addresses(mail["Reply-To"]),
            "Subject": mail["Subject"] or "",
            "Created": datetime.now(UTC).isoformat(),
            "Tags": [],
            "Size": len(envelope.content),
            "Attachments": sum(1 for _ in mail.iter_attachments()),
            "Snippet": (body.get_content() if body else "")[:250],
        }
        with lock:
            messages.append(summary)
        return "250 OK"


class Api(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/api/v1/messages"):
            with lock:
                listed = messages[::-1]
            counts = dict.fromkeys(("total", "unread", "count", "messages_count"), len(listed))
            self.answer(200, {**counts, "start": 0, "tags": [], "messages": listed})
        elif self.path in ("/livez", "/readyz"):
            self.answer(200, {})
        else:
            self.answer(404, {"error": "not found"})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if sys.argv[1:] == ["readyz"]:
    with urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=5) as response:
        sys.exit(response.status != 200)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as PID 1, TERM does nothing without a handler
Controller(Catcher(), hostname="0.0.0.0", port=1025).start()
print("mailpit stand-in: SMTP on :1025, API on :8025", flush=True)
ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()
