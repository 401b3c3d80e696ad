"""The mailer that runs in the Celery worker ("deliver" in MAILERS).

django-celery-email's task hands it the mails of a task, each named by its row's id and
Message-ID. It reads them in one go; for each one it takes the mail (state.take), builds
the message from the row, sends it through the transport and writes the outcome (state.py).
"""

import logging
import smtplib
import time
from datetime import UTC, datetime
from email import encoders
from email.message import Message

from celery import current_task
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from ..metrics import tally
from ..recipients import suppression, unsubscribe
from . import answers, connections, handoff, pace, slots, state
from .models import Fault
from .outbox import QueueBackend

logger = logging.getLogger(__name__)


class DeliverBackend(BaseEmailBackend):
    def __init__(self, *, using="transport", **kwargs):
        super().__init__(**kwargs)
        self.using = using
        self.read = {}  # id: the post_office Email, as read for sending
        self.listed = {}  # address: its active suppressions

    def open(self):
        # django-celery-email's task opens this mailer, then hands it the task's mails one at
        # a time; its arguments name them all, so they are read in one go here.
        self.prepare(task_mail_ids())

    def prepare(self, ids):
        """Read the mails not read yet, and look their recipients up on the suppression list."""
        new = [pk for pk in ids if pk not in self.read]
        if not new:
            return
        read = state.for_sending(new)
        self.read.update(read)
        recipients = [address for email in read.values() for address in recipients_of(email)]
        self.listed.update(suppression.on_list(recipients))

    def send_messages(self, email_messages):
        named = {
            message.email_id: message.extra_headers.get("Message-ID") for message in email_messages
        }
        self.prepare(named)
        return sum(
            self.deliver(email_id, message_id, self.read.pop(email_id, None))
            for email_id, message_id in named.items()
        )

    def deliver(self, email_id, message_id, read):
        """Send one mail, as read for sending, if it is still waiting for a worker; True if the
        server took it."""
        email = state.take(read, message_id)
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
            state.attempt_failed(email_id, error, Fault.REFUSED, celery_retries_left=False)
            return False
        # Suppressed recipients are not handed to the transport (recipients/suppression.py).
        withheld = suppression.hold_back(email, message, self.listed)
        if not message.recipients():
            state.withheld(email_id, withheld)
            return False
        unsubscribe.add_headers(email, message)
        alias = self.sending_alias(email.backend_alias)
        try:
            # A mailer MAILERS lacks, or cannot build, is a fault of the site's setup.
            with connections.borrowed(alias) as transport:
                # Within the provider's limits, for every worker together (pace.py).
                if (held := pace.acquire(alias, email.delivery.lane)) is not None:
                    hold(email_id, held.until, held.why)
                    return False
                refused = send(transport, message)
                partly_refused = smtp_refused(transport)
                tracked = provider_ids(transport, message)
        except connections.NoConnection as error:
            hold(email_id, time.time(), str(error))
            return False
        except Exception as error:
            verdict = answers.verdict(error)
            if verdict.throttled:  # not a failed attempt: back in line, the site slows down
                if verdict.kind == "connections":
                    slots.too_many(alias)
                until = pace.throttled(alias, verdict)
                hold(email_id, until, "throttled", answer=state.answer_of(error))
                return False
            if isinstance(error, smtplib.SMTPRecipientsRefused):
                suppression.learn_from_refusals(error.recipients)
            if state.attempt_failed(email_id, error, verdict.fault, celery_retries_left()):
                raise  # django-celery-email's task schedules the retry
            return False
        pace.accepted(alias)
        suppression.learn_from_refusals(partly_refused)
        state.sent(email_id, {**withheld, **refused}, tracked=tracked)
        return True

    def sending_alias(self, backend_alias):
        """The MAILERS alias that sends for post_office's backend alias (mail.send(backend=...)),
        or ours: never one that would queue the mail again."""
        config = settings.MAILERS.get(backend_alias or self.using, {})
        backend = config.get("BACKEND", "").rpartition(".")[2]
        if backend in (QueueBackend.__name__, DeliverBackend.__name__):
            return self.using
        return backend_alias or self.using


def hold(email_id, until, why, answer=None):
    """The mail waits for the provider's limits until `until` (epoch seconds), then goes back
    in line."""
    if state.held(email_id, datetime.fromtimestamp(until, UTC), why, answer):
        handoff.release_at(until)


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


def send(transport, message):
    """Send through the transport; return {address: answer} for the recipients it refused
    while it accepted the others."""
    transport.open()  # kept open, so the connection's answers can be read after
    transport.send_messages([message])
    refused = {
        address: f"{code} {answer.decode(errors='replace')}"
        for address, (code, answer) in smtp_refused(transport).items()
    }
    service = getattr(message, "anymail_status", None)
    for address, recipient in (service.recipients if service else {}).items():
        if recipient.status in ("rejected", "invalid"):
            refused[address] = recipient.status
    return refused


def smtp_refused(transport):
    """{address: (code, answer)} an SMTP server refused in the last send, while it took the
    others."""
    return getattr(getattr(transport, "connection", None), "refused", {})


def provider_ids(transport, message):
    """[(address, service, the service's message id)] for each recipient an email service
    took: its delivery events name that id."""
    service = getattr(message, "anymail_status", None)
    return [
        (address, transport.esp_name, str(recipient.message_id))
        for address, recipient in (service.recipients if service else {}).items()
        if recipient.message_id is not None and recipient.status not in ("rejected", "invalid")
    ]


def task_mail_ids():
    """The ids of the mails the running django-celery-email task names (none outside one)."""
    messages = current_task.request.args[0] if current_task and current_task.request.args else []
    return [message["email_id"] for message in messages if "email_id" in message]


def celery_retries_left():
    """True inside a Celery task that has retries left."""
    if not current_task:
        return False
    return current_task.request.retries < current_task.max_retries
