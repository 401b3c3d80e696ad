"""The mailer that sends in the Celery worker (SENDER_MAILER in MAILERS).

The task (task.py) opens it and hands it the task's mails, each named by its row's id and
Message-ID. It reads them in one go; for each one it takes the mail (state.take), builds
the message from the row, sends it through a kept connection to the mail server
(connections.py) and writes the outcome (state.py); the take and the outcome "sent" are
committed with the other threads' (group_commit.py).
"""

import logging
import smtplib
import time
from datetime import UTC, datetime
from email import encoders
from email.message import Message

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from post_office.models import Email

from ..metrics import tally
from ..recipients import events, suppression, unsubscribe
from . import answers, connections, group_commit, pace, slots, state, sweeper, task
from .models import Fault
from .outbox import QueueBackend
from config.mail import SERVER_MAILER

logger = logging.getLogger(__name__)


class SenderBackend(BaseEmailBackend):
    def __init__(self, *, using=SERVER_MAILER, **kwargs):
        super().__init__(**kwargs)
        self.using = using
        self.read = {}  # id: the post_office Email, as read for sending
        self.listed = {}  # address: its active suppressions

    def open(self):
        # The task opens this mailer, then hands it the task's mails one at a time; its
        # arguments name them all, so they are read in one go here.
        self.prepare(task.mail_ids())

    def prepare(self, ids):
        """Read the mails not read yet, and look their recipients up on the suppression list."""
        new = [pk for pk in ids if pk not in self.read]
        if not new:
            return
        read = for_sending(new)
        self.read.update(read)
        recipients = [address for email in read.values() for address in recipients_of(email)]
        self.listed.update(suppression.on_list(recipients))

    def send_messages(self, email_messages):
        named = task.named(email_messages)
        self.prepare(named)
        return sum(
            self.deliver(email_id, message_id, self.read.pop(email_id, None))
            for email_id, message_id in named.items()
        )

    def deliver(self, email_id, message_id, read):
        """Send one mail, as read for sending, if it is still waiting for a worker; True if the
        server took it."""
        email = take(read, message_id)
        if email is None:
            skipped(email_id, message_id, read)
            return False
        with tally.attempt(email):  # counted for /metrics by its outcome
            return self.send_taken(email_id, email)

    def send_taken(self, email_id, email):
        try:
            message = outgoing(email)
        except Exception as error:
            logger.exception("Mail %s cannot be built", email_id)
            failed(email_id, error, Fault.REFUSED, retries_left=False)
            return False
        # Suppressed recipients are not handed to the server (recipients/suppression.py).
        withheld = suppression.hold_back(email, message, self.listed)
        if not message.recipients():
            state.withheld(email_id, withheld)
            return False
        unsubscribe.add_headers(email, message)
        alias = self.sending_alias(email.backend_alias)
        try:
            # Within the provider's limits, for every worker together (pace.py). The thread
            # waits for its slot before it borrows one of the site's connections: waiting
            # with it, it would keep it from the threads of other worker processes.
            if (held := pace.acquire(alias, email.delivery.lane)) is not None:
                hold(email_id, held.until, held.why)
                return False
            # A mailer MAILERS lacks, or cannot build, is a fault of the site's setup.
            with connections.borrowed(alias) as connection:
                refused = send(connection, message)
                partly_refused = smtp_refused(connection)
                tracked = provider_ids(connection, message)
        except connections.NoConnection as error:
            hold(email_id, time.time(), str(error))
            return False
        except Exception as error:
            if after_error(email_id, alias, error):
                raise  # the task retries the mail (task.py)
            return False
        pace.accepted(alias)
        suppression.learn_from_refusals(partly_refused)
        group_commit.run(email_id, state.sent, email_id, {**withheld, **refused}, tracked=tracked)
        return True

    def sending_alias(self, backend_alias):
        """The MAILERS alias that sends for post_office's backend alias (mail.send(backend=...)),
        or ours: never one that would queue the mail again."""
        config = settings.MAILERS.get(backend_alias or self.using, {})
        backend = config.get("BACKEND", "").rpartition(".")[2]
        if backend in (QueueBackend.__name__, SenderBackend.__name__):
            return self.using
        return backend_alias or self.using


def for_sending(ids):
    """{id: post_office Email} of these mails, read in one go with what sending needs: the
    delivery state, the template, the attachments."""
    emails = Email.objects.select_related("delivery", "template").prefetch_related("attachments")
    return {email.pk: email for email in emails.filter(pk__in=ids)}


def take(email, message_id):
    """The mail, as read for sending, taken by this worker to send it now; None if it is not
    waiting for a worker (or for its scheduled time), is expired, or is not the mail the task
    names (its Message-ID differs)."""
    now = timezone.now()
    while email is not None and state.takeable(email, message_id, now):
        if group_commit.run(email.pk, state.take, email):
            return email
        email = for_sending([email.pk]).get(email.pk)  # it changed since it was read
    return None


def after_error(email_id, alias, error):
    """Write what a send's error means for the mail; True if the task should retry it now."""
    verdict = answers.verdict(error)
    if verdict.throttled:  # not a failed attempt: back in line, the site slows down
        if verdict.kind == "connections":
            slots.too_many(alias)
        until = pace.throttled(alias, verdict)
        hold(email_id, until, "throttled", answer=answer_of(error))
        return False
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        suppression.learn_from_refusals(error.recipients)
    return failed(email_id, error, verdict.fault, task.retries_left())


def failed(email_id, error, fault, retries_left):
    """Write a failed attempt; True if the task should retry the mail now."""
    return state.attempt_failed(
        email_id, answer_of(error), type(error).__name__, fault, retries_left
    )


def hold(email_id, until, why, answer=None):
    """The mail waits for the provider's limits until `until` (epoch seconds), then goes back
    in line."""
    if state.held(email_id, datetime.fromtimestamp(until, UTC), why, answer):
        sweeper.release_at(until)


def recipients_of(email):
    return [*email.to, *email.cc, *email.bcc]


def skipped(email_id, message_id, email):
    """Say why a task's mail was not sent: it is not this site's mail, or it is not waiting
    for a worker (sent already, failed, being sent, or scheduled later)."""
    ours = email.message_id if email is not None else None
    if ours != message_id:
        logger.warning(
            "A task for mail %s %s is not this site's (its mail %s is %s): dropped, nothing sent",
            email_id,
            message_id,
            email_id,
            ours or "missing",
        )
    else:
        logger.info("Mail %s is not waiting for a worker: skipped", email_id)


def outgoing(email):
    """The message to send for a post_office row, its attachments read from storage."""
    message = email.prepare_email_message()
    for part in message.attachments:
        # post_office rebuilds parts that carry headers (inline images with a Content-ID)
        # from raw bytes and no transfer encoding: SMTP would mangle them.
        if isinstance(part, Message) and "Content-Transfer-Encoding" not in part:
            encoders.encode_base64(part)
    return message


def send(connection, message):
    """Send through the connection; return {address: answer} for the recipients it refused
    while it accepted the others."""
    connection.open()  # kept open, so the connection's answers can be read after
    connection.send_messages([message])
    refused = {
        address: f"{code} {answer.decode(errors='replace')}"
        for address, (code, answer) in smtp_refused(connection).items()
    }
    service = getattr(message, "anymail_status", None)
    for address, recipient in (service.recipients if service else {}).items():
        if recipient.status in ("rejected", "invalid"):
            refused[address] = recipient.status
    return refused


def smtp_refused(connection):
    """{address: (code, answer)} an SMTP server refused in the last send, while it took the
    others."""
    return getattr(getattr(connection, "connection", None), "refused", {})


def provider_ids(connection, message):
    """[events.Tracked] for each recipient an email service took: its delivery events name
    the service's message id."""
    service = getattr(message, "anymail_status", None)
    return [
        events.Tracked(address, connection.esp_name, str(recipient.message_id))
        for address, recipient in (service.recipients if service else {}).items()
        if recipient.message_id is not None and recipient.status not in ("rejected", "invalid")
    ]


def answer_of(error):
    """What the server or the service said, as a line: "451 4.3.0 Try again later"."""
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {answer.decode(errors='replace')}"
            for address, (code, answer) in error.recipients.items()
        )
    return str(error) or repr(error)
