"""An HTTP server standing in for an email service's API, as django-anymail's backends call it."""

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus

# What each service answers to a message it accepts: (HTTP status, JSON body or None).
ACCEPTED = {
    "amazon_ses": lambda request: (200, {"MessageId": str(uuid.uuid4())}),
    "brevo": lambda request: (201, {"messageId": f"<{uuid.uuid4()}@smtp-relay.brevo.com>"}),
    "mailgun": lambda request: (200, {"id": f"<{uuid.uuid4()}@mg.example.com>", "message": "Queued."}),
    "postmark": lambda request: (
        200,
        {"To": json.loads(request)["To"], "MessageID": str(uuid.uuid4()), "ErrorCode": 0, "Message": "OK"},
    ),
    "sendgrid": lambda request: (202, None),
}
REFUSED = {"__type": "MessageRejected", "message": "Email address is not verified", "ErrorCode": 300}


class FakeEmailApi:
    """Accepts every message like `service` does, except: a message to an address
    starting with "reject" is refused (400), and the first one to an address
    starting with "flaky" gets 503 Service Unavailable. With `retry_after`, the first
    message gets 429 Too Many Requests with `Retry-After: <retry_after>`."""

    def __init__(self, service, retry_after=None):
        self.service = service
        self.retry_after = retry_after
        self.answered = []  # (time.time(), HTTP status) of each message's answer
        self.requests = []  # the text of every request, raw MIME decoded
        # (request text, the id the service gave the message) of each message it accepted
        self.accepted = []
        self.files = {}  # path: bytes, served to GET (Amazon SNS's signing certificate)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body, content_type):
        status, reply = self._answer(body, content_type)
        with self.lock:
            self.answered.append((time.time(), status))
        return status, reply

    def _answer(self, body, content_type):
        text = readable(body, content_type)
        with self.lock:
            first_flaky = "flaky" in text and not any("flaky" in seen for seen in self.requests)
            self.requests.append(text)
            throttle = self.retry_after is not None and len(self.requests) == 1
        if throttle:
            return 429, {"ErrorCode": 429, "Message": "Too many requests"}
        if "reject" in text:
            return 400, REFUSED
        if first_flaky:
            return 503, {"message": "Service Unavailable"}
        status, reply = ACCEPTED[self.service](body)
        with self.lock:
            self.accepted.append((text, message_id(self.service, reply, body)))
        return status, reply

    def message_id(self, marker):
        """The service's id for the one accepted message whose request holds `marker`."""
        with self.lock:
            [found] = [given for text, given in self.accepted if marker in text]
        return found

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, reply = api.answer(body, self.headers["Content-Type"])
                payload = json.dumps(reply).encode() if reply is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 400:
                    self.send_header("x-amzn-ErrorType", REFUSED["__type"])
                if status == 429:
                    self.send_header("Retry-After", str(api.retry_after))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                content = api.files.get(self.path)
                self.send_response(200 if content else 404)
                self.send_header("Content-Length", str(len(content or b"")))
                self.end_headers()
                self.wfile.write(content or b"")

            def log_message(self, *args):
                pass

        return Handler


def readable(body, content_type):
    """The request as text: a form (Mailgun) or a raw MIME message (Amazon SES) decoded."""
    text = body.decode("utf-8", "replace")
    if content_type == "application/x-www-form-urlencoded":
        return unquote_plus(text)
    try:
        raw = json.loads(text)["Content"]["Raw"]["Data"]
    except (ValueError, KeyError, TypeError):
        return text
    return text + base64.b64decode(raw).decode("utf-8", "replace")


def message_id(service, reply, body):
    """The id a service gives an accepted message, which its events name. SendGrid answers
    with no body: its events name the id anymail sent along in the message's custom_args."""
    if service == "sendgrid":
        return json.loads(body)["personalizations"][0]["custom_args"]["anymail_id"]
    field = {"amazon_ses": "MessageId", "brevo": "messageId", "mailgun": "id"}.get(service, "MessageID")
    return reply[field]
