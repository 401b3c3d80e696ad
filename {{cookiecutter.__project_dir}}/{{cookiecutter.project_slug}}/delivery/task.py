"""The task that carries mail to the workers, and the site's contract with it, in one place.

The carrier is django-celery-email's task `send_emails(messages, {}, using=SENDER_MAILER)`.
Each message is django-celery-email's dict of an EmailMessage that carries only what names a
mail: its row's id (the MAIL_ID_ATTRIBUTE attribute) and its Message-ID header; no recipients,
so nothing but the site's sender (sender.py), which reads the row, can send it. The task opens
the sender, which reads the task's mails (mail_ids), and hands it the messages one by one.
When the sender raises, the task retries that mail, MAIL_MAX_RETRIES times
MAIL_RETRY_INTERVAL apart (CELERY_EMAIL_TASK_CONFIG in config/mail.py).
"""

from celery import current_task
from django.core.mail import EmailMessage
from djcelery_email.tasks import send_emails
from djcelery_email.utils import email_to_dict

from config.mail import MAIL_ID_ATTRIBUTE, SENDER_MAILER

MESSAGE_ID_HEADER = "Message-ID"


def message(pk, message_id):
    """What the task carries for a mail: only what names it."""
    stub = EmailMessage(headers={MESSAGE_ID_HEADER: message_id} if message_id else {})
    setattr(stub, MAIL_ID_ATTRIBUTE, pk)
    return email_to_dict(stub)


def publish(mails, queue, priority):
    """Publish one task for [(id, Message-ID)] on a queue; raises if the broker did not take it."""
    ids = ", ".join(str(pk) for pk, _ in mails)
    send_emails.apply_async(
        ([message(pk, message_id) for pk, message_id in mails], {}),
        {"using": SENDER_MAILER},
        queue=queue,
        priority=priority,
        # What workers log for the task: the mails' ids.
        argsrepr=f"(mails {ids})",
        kwargsrepr="",
    )


def mail_ids():
    """The ids of the mails the running task names (none outside a task)."""
    messages = current_task.request.args[0] if current_task and current_task.request.args else []
    return [message[MAIL_ID_ATTRIBUTE] for message in messages if MAIL_ID_ATTRIBUTE in message]


def named(email_messages):
    """{id: Message-ID} of the messages the task rebuilt and handed to the sender."""
    return {
        getattr(message, MAIL_ID_ATTRIBUTE): message.extra_headers.get(MESSAGE_ID_HEADER)
        for message in email_messages
    }


def retries_left():
    """True inside a task that has retries left: raising from the sender then retries the mail."""
    if not current_task:
        return False
    return current_task.request.retries < current_task.max_retries
