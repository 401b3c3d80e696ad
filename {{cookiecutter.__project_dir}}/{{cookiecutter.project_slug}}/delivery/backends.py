"""The two mailers of the mail path (see MAILERS in config/settings.py)."""

from email.message import Message
from email.utils import make_msgid

from celery import current_task
from django.core.files.base import ContentFile
from django.core.mail import mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from post_office.models import STATUS, Email
from post_office.settings import get_message_id_enabled, get_message_id_fqdn
from post_office.signals import email_queued
from post_office.utils import create_attachments, parse_priority

from . import status


class QueueBackend(BaseEmailBackend):
    """The default mailer: records each message as a post_office Email and returns.

    Like post_office.EmailBackend, with two differences: the subject and the
    bodies are stored as given (post_office renders them as Django templates,
    so a variable in braces vanished and a lone tag raised), and every
    attachment keeps its declared MIME type and headers (post_office sent
    ("report.pdf", data, "application/pdf") as application/octet-stream). A
    message and its attachments are written together or not at all.
    """

    def send_messages(self, email_messages):
        emails = []
        for message in email_messages:
            with transaction.atomic():
                email = queued_email(message)
                email.save()  # post_office validates the addresses here
                attachments = dict(map(stored_attachment, message.attachments))
                if attachments:
                    email.attachments.add(*create_attachments(attachments))
            emails.append(email)
        email_queued.send(sender=Email, emails=emails)
        return len(emails)


def queued_email(message):
    """An unsaved post_office Email for a Django EmailMessage."""
    alternatives = getattr(message, "alternatives", [])
    html = next((body for body, type_ in alternatives if type_ == "text/html"), "")
    text = message.body
    if message.content_subtype == "html":
        text, html = "", message.body
    headers = dict(message.extra_headers)
    if message.reply_to:
        headers.setdefault("Reply-To", ", ".join(message.reply_to))
    return Email(
        from_email=message.from_email,
        to=message.to,
        cc=message.cc,
        bcc=message.bcc,
        subject=message.subject,
        message=text,
        html_message=html,
        headers=headers or None,
        priority=parse_priority(None),
        status=STATUS.queued,
        message_id=make_msgid(domain=get_message_id_fqdn()) if get_message_id_enabled() else None,
    )


def stored_attachment(attachment):
    """(name, post_office attachment spec) for a Django attachment."""
    if isinstance(attachment, Message):
        content = attachment.get_payload(decode=True)
        spec = {
            "file": ContentFile(content),
            "mimetype": attachment.get_content_type(),
            "headers": {
                key: value
                for key, value in attachment.items()
                if key.lower() in ("content-id", "content-disposition")
            },
        }
        return attachment.get_filename(), spec
    name, content, mimetype = attachment
    if isinstance(content, str):
        content = content.encode()
    return name, {"file": ContentFile(content), "mimetype": mimetype or ""}


class ReportingBackend(BaseEmailBackend):
    """Runs in the Celery worker: sends through the mailer `using` names, then
    writes each outcome on the mail's post_office row (see status.py)."""

    def __init__(self, *, using, **kwargs):
        super().__init__(**kwargs)
        self.transport = mailers[using]

    def open(self):
        return self.transport.open()

    def close(self):
        self.transport.close()

    def send_messages(self, email_messages):
        sent = 0
        for message in email_messages:
            email_id = message.email_id
            if not status.start_sending(email_id):
                continue
            try:
                self.transport.send_messages([message])
            except Exception as error:
                self.transport.close()
                if status.mark_attempt_failed(email_id, error, celery_retries_left()):
                    raise  # django-celery-email's task schedules the retry
                continue
            status.mark_sent(email_id)
            sent += 1
        return sent


def celery_retries_left():
    """True inside a Celery task that has retries left."""
    if not current_task:
        return False
    return current_task.request.retries < current_task.max_retries
