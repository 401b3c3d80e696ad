"""A real Postfix (Debian's, in a container made here) that limits its clients as relays do:
tests/images/postfix. Mail for example.com lands in one Maildir the test counts."""

import contextlib
import smtplib
import uuid

from .processes import wait_for
from .smtp_catcher import free_port
from .stand_ins import IMAGES, build_base, build_stand_in

IMAGE = "localhost/template-tests-postfix:latest"


def answers(port):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2) as server:
            return server.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


class PostfixRelay:
    def __init__(self, engine, port):
        self.engine, self.port = engine, port
        self.name = f"postfix-{uuid.uuid4().hex[:8]}"
        self.url = f"smtp://127.0.0.1:{port}"

    def delivered(self):
        """Mails in the inbox's Maildir."""
        listing = self.engine.run("exec", self.name, "sh", "-c", "ls /home/inbox/Maildir/new 2>/dev/null")
        return len(listing.stdout.split())

    def refusals(self):
        """(connections refused, mails refused) as Postfix's log counts them."""
        log = self.engine.run("logs", self.name).stdout
        return log.count("Connection concurrency limit exceeded"), log.count(
            "Message delivery request rate limit exceeded"
        )


@contextlib.contextmanager
def postfix_relay(engine, workdir):
    base, _ = build_base(engine, workdir)
    build_stand_in(engine, base, IMAGES / "postfix", [IMAGE], workdir)
    relay = PostfixRelay(engine, free_port())
    engine.run("run", "--detach", f"--name={relay.name}", f"--publish=127.0.0.1:{relay.port}:25", IMAGE)
    try:
        wait_for(lambda: answers(relay.port), 60, f"Postfix in {relay.name} to answer")
        yield relay
    finally:
        engine.run("rm", "--force", relay.name, check=False)
