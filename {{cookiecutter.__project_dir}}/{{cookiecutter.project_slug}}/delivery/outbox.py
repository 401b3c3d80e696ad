"""Where every mail comes in: the default mailer (send_mail(), EmailMessage.send()) and
post_office's own doors (mail.send(), send_many(), priority "now", Email.dispatch()).

Each mail is a post_office row with its delivery state, written in the caller's
transaction; once that commits, handoff.py gives it to the broker. Nothing here waits
for the broker or the mail server.
"""

from email.message import Message
from email.utils import make_msgid

from django.core.files.base import ContentFile
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import BadHeaderError
from django.db import transaction
from post_office.models import STATUS, Email
from post_office.settings import get_message_id_enabled, get_message_id_fqdn
from post_office.signals import email_queued
from post_office.utils import create_attachments, parse_priority

from . import handoff, state


class QueueBackend(BaseEmailBackend):
    """The default mailer: records each message as a post_office Email and returns.

    Like post_office.EmailBackend, with two differences: the subject and the
    bodies are stored as given (post_office renders them as Django templates,
    so a variable in braces vanished and a lone tag raised), and every
    attachment keeps its declared MIME type and headers (post_office sent
    ("report.pdf", data, "application/pdf") as application/octet-stream, and kept
    one of two attachments of the same name). The messages and their attachments
    are written together or not at all.
    """

    def send_messages(self, email_messages):
        for message in email_messages:
            refuse_line_breaks(message)
        emails = []
        with transaction.atomic():
            for message in email_messages:
                email = queued_email(message)
                email.save()  # post_office validates the addresses here
                for attachment in message.attachments:  # one by one: two may share a name
                    email.attachments.add(
                        *create_attachments(dict([stored_attachment(attachment)]))
                    )
                emails.append(email)
            email_queued.send(sender=Email, emails=emails)
        return len(emails)


def refuse_line_breaks(message):
    """Raise BadHeaderError (Django's name for ValueError since 6.0) for a header value with a
    line break, as Django's own mailers do when they write the message: here the message is
    written later, in a worker, and the caller must hear it now."""
    values = [message.subject, message.from_email, *message.extra_headers.values()]
    values += [*message.to, *message.cc, *message.bcc, *message.reply_to]
    for value in values:
        if "\r" in str(value) or "\n" in str(value):
            raise BadHeaderError(f"Header values may not contain line breaks: {value!r}")


def on_queued(sender, emails, **kwargs):
    """post_office queued these mails (through any door): record them, and hand them to the
    broker once the transaction that wrote them commits."""
    state.record(emails)
    handoff.after_commit(emails)


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
        # An inline part may have no name; post_office needs one to store it.
        return attachment.get_filename() or "inline", spec
    name, content, mimetype = attachment
    if isinstance(content, str):
        content = content.encode()
    return name, {"file": ContentFile(content), "mimetype": mimetype or ""}
