import secrets
import socket
import time

from django.core.mail import send_mail
from django.core.management.base import BaseCommand
from django.utils import timezone
from post_office.models import Email

from ...models import Delivery, Fault, State

POLL_SECONDS = 0.5
BODY = """\
This mail was sent by `manage.py send_test_mail` on {host} at {now:%Y-%m-%d %H:%M:%S %Z}.

It went the way all of the site's mail goes: a post_office row, the broker,
a worker, the mail server. If you are reading it, all of them work.
"""


class Command(BaseCommand):
    help = (
        "Send one mail to ADDRESS the way the site sends all its mail (database, broker, "
        "worker, mail server), wait for the outcome and say where it stands. "
        "Exits 0 only if the mail server accepted it."
    )

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument(
            "--timeout", type=float, default=30, help="seconds to wait for the outcome (30)"
        )

    def handle(self, *args, address, timeout, **options):
        host = socket.gethostname()
        subject = f"Test mail {secrets.token_hex(4)} from {host}"
        send_mail(subject, BODY.format(host=host, now=timezone.localtime()), None, [address])
        email = Email.objects.get(subject=subject)
        self.stdout.write(
            f"Test mail #{email.pk} to {address} is queued; waiting up to {timeout:g} s."
        )

        deadline = time.monotonic() + timeout
        delivery = Delivery.objects.get(email=email)
        while delivery.state not in (State.SENT, State.FAILED, State.RETRYING, State.EXPIRED):
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
            delivery.refresh_from_db()

        self.stdout.write(where_it_stands(delivery))
        if delivery.state != State.SENT:
            raise SystemExit(1)


def where_it_stands(delivery):
    if delivery.state == State.SENT:
        refused = "".join(
            f"; refused {address}: {answer}" for address, answer in delivery.refused.items()
        )
        return f"sent: the mail server accepted it{refused}"
    if delivery.state in (State.FAILED, State.EXPIRED):
        return f"{delivery.state}: {delivery.reason}"
    if delivery.state == State.RETRYING:
        attempts = delivery.failed_attempts
        setup = " (the site's setup)" if delivery.fault == Fault.SETUP else ""
        return (
            f"retrying ({attempts} failed attempt{'s' * (attempts != 1)}, "
            f"last error{setup}: {delivery.reason})"
        )
    if delivery.state == State.SENDING:
        return "still sending: a worker is talking to the mail server; look again in a minute"
    return "still queued: is a worker running? is the broker reachable?"
