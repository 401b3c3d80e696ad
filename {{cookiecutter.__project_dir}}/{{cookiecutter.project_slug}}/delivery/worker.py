"""The mailer that runs in the Celery worker ("deliver" in MAILERS).

django-celery-email's task hands it the mails of a task, each named by its row's id and
Message-ID. It reads them in one go; for each one it takes the mail (state.take), builds
the message from the row, sends it through the transport and writes the outcome (state.py).
"""

import logging
import smtplib
import ssl
from email import encoders
from email.message import Message

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from celery import current_task
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend

from ..metrics import tally
from ..recipients import suppression, unsubscribe
from . import connections, state
from .models import Fault
from .outbox import QueueBackend

logger = logging.getLogger(__name__)

# SMTP replies about the site's own setup: authentication required, mechanism too weak,
# credentials refused, encryption required.
SETUP_REPLIES = {530, 534, 535, 538}
# The HTTP answers of an email service about the site's key.
SETUP_STATUSES = {401, 403}


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
        transport = None
        try:
            # A mailer MAILERS lacks, or cannot build, is a fault of the site's setup.
            transport = self.transport(email.backend_alias)
            refused = send(transport, message)
        except Exception as error:
            if transport is not None:
                connections.discard(transport)  # a broken connection is not used again
            if isinstance(error, smtplib.SMTPRecipientsRefused):
                suppression.learn_from_refusals(error.recipients)
            if state.attempt_failed(email_id, error, fault_of(error), celery_retries_left()):
                raise  # django-celery-email's task schedules the retry
            return False
        suppression.learn_from_refusals(smtp_refused(transport))
        state.sent(email_id, {**withheld, **refused}, tracked=provider_ids(transport, message))
        return True

    def transport(self, alias):
        """This thread's mailer for post_office's backend alias (mail.send(backend=...)), or
        ours."""
        mailer = connections.mailer(alias or self.using)
        if isinstance(mailer, QueueBackend | DeliverBackend):  # it would queue the mail again
            return connections.mailer(self.using)
        return mailer


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


def fault_of(error):
    """Whose fault a failed send is: the message's (refused), passing, or the site's setup."""
    if isinstance(error, AnymailRecipientsRefused):
        return Fault.REFUSED
    if isinstance(error, AnymailAPIError):
        status = api_status(error)
        if status in SETUP_STATUSES:
            return Fault.SETUP
        if status is not None and 400 <= status < 500 and status != 429:
            return Fault.REFUSED
        return Fault.PASSING  # no answer, "slow down" (429), or the service's own trouble (5xx)
    if isinstance(error, ImproperlyConfigured | ssl.SSLCertVerificationError):
        return Fault.SETUP
    if isinstance(error, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError):
        return Fault.SETUP
    if isinstance(error, smtplib.SMTPSenderRefused):
        return Fault.SETUP if error.smtp_code >= 500 else Fault.PASSING
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return Fault.REFUSED if all(code >= 500 for code in codes) else Fault.PASSING
    if isinstance(error, smtplib.SMTPResponseException):
        if error.smtp_code in SETUP_REPLIES:
            return Fault.SETUP
        return Fault.REFUSED if error.smtp_code >= 500 else Fault.PASSING
    if isinstance(error, OSError | smtplib.SMTPException):
        return Fault.PASSING  # no answer: refused connection, timeout, disconnect
    return Fault.REFUSED  # the message itself cannot be sent as it is


def api_status(error):
    """The HTTP status of an email service's answer, or None if it did not answer."""
    if error.status_code is not None:
        return error.status_code
    if isinstance(error.response, dict):  # boto3's parsed answer, from Amazon SES
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def task_mail_ids():
    """The ids of the mails the running django-celery-email task names (none outside one)."""
    messages = current_task.request.args[0] if current_task and current_task.request.args else []
    return [message["email_id"] for message in messages if "email_id" in message]


def celery_retries_left():
    """True inside a Celery task that has retries left."""
    if not current_task:
        return False
    return current_task.request.retries < current_task.max_retries
