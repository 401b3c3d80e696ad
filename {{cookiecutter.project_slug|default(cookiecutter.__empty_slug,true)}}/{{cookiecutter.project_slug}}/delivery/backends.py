"""The two mailers of the mail path (see MAILERS in config/settings.py)."""

from email.message import Message

from celery import current_task
from django.core.files.base import ContentFile
from django.core.mail import mailers
from django.core.mail.backends.base import BaseEmailBackend
from post_office import mail

from . import status


class QueueBackend(BaseEmailBackend):
    """The default mailer: records each message as a post_office Email and returns.

    Like post_office.EmailBackend, but every attachment keeps its declared
    MIME type and headers (post_office's backend sends ("report.pdf", data,
    "application/pdf") as application/octet-stream).
    """

    def send_messages(self, email_messages):
        for message in email_messages:
            alternatives = getattr(message, "alternatives", [])
            html = next((body for body, type_ in alternatives if type_ == "text/html"), "")
            text = message.body
            if message.content_subtype == "html":
                text, html = "", message.body
            headers = dict(message.extra_headers)
            if message.reply_to:
                headers.setdefault("Reply-To", ", ".join(message.reply_to))
            mail.send(
                recipients=message.to,
                cc=message.cc,
                bcc=message.bcc,
                sender=message.from_email,
                subject=message.subject,
                message=text,
                html_message=html,
                headers=headers or None,
                attachments=dict(map(stored_attachment, message.attachments)),
            )
        return len(email_messages)


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
