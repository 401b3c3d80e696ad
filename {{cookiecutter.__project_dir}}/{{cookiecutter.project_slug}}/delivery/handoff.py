"""Hand queued mails to the Celery workers, through django-celery-email's task."""

import logging
import time
from email import encoders
from email.message import Message
from itertools import batched, groupby

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.utils import timezone
from djcelery_email.tasks import send_emails
from djcelery_email.utils import email_to_dict

from . import status

logger = logging.getLogger(__name__)

# After a failed publish this process leaves the broker alone for a while:
# requests keep returning at once and their mail waits for the sweeper.
BROKER_PAUSE_SECONDS = 10
_broker_paused_until = 0.0


def hand_off_due(emails):
    """Hand out the mails whose time has come; note the hand-off, or leave them for the sweeper."""
    now = timezone.now()
    due = [email for email in emails if email.scheduled_time is None or email.scheduled_time <= now]
    prefetch_related_objects(due, "attachments")
    left = hand_off(due)
    status.mark_handed_off([email for email in due if email not in left])
    status.leave_for_sweeper(left)


def hand_off(emails):
    """Publish the mails, a task per chunk and priority; return the ones left behind."""
    global _broker_paused_until
    if time.monotonic() < _broker_paused_until:
        return list(emails)

    by_priority = sorted(emails, key=lambda email: email.priority or 0, reverse=True)
    chunks = [
        (priority, chunk)
        for priority, same in groupby(by_priority, key=lambda email: email.priority or 0)
        for chunk in batched(same, settings.CELERY_EMAIL_CHUNK_SIZE)
    ]
    for index, (priority, chunk) in enumerate(chunks):
        messages = [message for email in chunk if (message := task_message(email))]
        if not messages:
            continue
        try:
            send_emails.apply_async(
                (messages, {}),
                {"using": "deliver"},
                priority=priority,
                # What workers log for the task: the mails' ids, not their contents.
                argsrepr=f"(mails {', '.join(str(email.pk) for email in chunk)})",
                kwargsrepr="",
            )
        except Exception:
            logger.exception("Broker unreachable; the sweeper will hand these mails out later")
            _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
            return [email for _, rest in chunks[index:] for email in rest]
    return []


def task_message(email):
    """The mail as django-celery-email's task carries it, or None if it cannot be built."""
    try:
        message = email.prepare_email_message()
    except Exception as error:
        logger.exception("Cannot build mail %s", email.pk)
        status.mark_attempt_failed(email.pk, error, celery_retries_left=False)
        return None
    for part in message.attachments:
        # post_office rebuilds parts that carry headers (inline images with a
        # Content-ID) from raw bytes and no transfer encoding: SMTP would mangle them.
        if isinstance(part, Message) and "Content-Transfer-Encoding" not in part:
            encoders.encode_base64(part)
    message.email_id = email.pk
    return email_to_dict(message)
