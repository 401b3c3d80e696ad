"""The status of each mail, written on its post_office row by whoever handles it.

    queued    waiting for its first attempt (possibly already in the broker)
    sending   (status is empty) a worker is talking to the mail server right now
    requeued  an attempt failed for a passing reason; another one follows
    sent      the mail server accepted the message
    failed    refused for good, expired, or still undeliverable after MAIL_GIVE_UP_AFTER

number_of_retries counts the failed attempts; each one leaves a Log row.
"""

import smtplib
from datetime import timedelta

from anymail.exceptions import AnymailAPIError
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from post_office.models import STATUS, Email, Log
from post_office.settings import get_log_level, get_retry_timedelta

PENDING = (STATUS.queued, STATUS.requeued)
# Between a failed attempt and its Celery retry the sweeper keeps its hands
# off the mail for this much longer than the retry interval.
RETRY_GRACE = timedelta(minutes=1)
# A queued mail whose row was not touched since it was written (last_updated
# within UNTOUCHED of created) was never handed off; after this long the
# sweeper does it.
UNTOUCHED = timedelta(seconds=1)
NEVER_HANDED_OFF_AFTER = timedelta(minutes=1)


def not_expired(now):
    return Q(expires_at=None) | Q(expires_at__gt=now)


def start_sending(email_id):
    """Take a pending mail for this worker; False if it is sent, failed or taken."""
    now = timezone.now()
    taken = Email.objects.filter(not_expired(now), pk=email_id, status__in=PENDING)
    return taken.update(status=None, last_updated=now) == 1


def mark_sent(email_id):
    with transaction.atomic():
        Email.objects.filter(pk=email_id).update(status=STATUS.sent, last_updated=timezone.now())
        if get_log_level() >= 2:
            Log.objects.create(email_id=email_id, status=STATUS.sent, message="")


def mark_attempt_failed(email_id, error, celery_retries_left):
    """Write a failed attempt on the mail; return True if Celery should retry it now.

    A refusal for good (an SMTP 5xx reply, or an error that is not about
    reaching the server) fails the mail at once. A passing failure is retried:
    by Celery while `celery_retries_left`, else by the sweeper once the retry
    interval has passed, until the mail is older than MAIL_GIVE_UP_AFTER.
    """
    now = timezone.now()
    created = Email.objects.values_list("created", flat=True).get(pk=email_id)
    message = str(error) or repr(error)
    if is_permanent(error):
        fields = {"status": STATUS.failed}
    elif now - created > settings.MAIL_GIVE_UP_AFTER:
        fields = {"status": STATUS.failed}
        message = f"gave up after {settings.MAIL_GIVE_UP_AFTER}: {message}"
    else:
        next_try = now + get_retry_timedelta()
        fields = {
            "status": STATUS.requeued,
            "scheduled_time": next_try + RETRY_GRACE if celery_retries_left else next_try,
            "number_of_retries": Coalesce(F("number_of_retries"), 0) + 1,
        }
    with transaction.atomic():
        Email.objects.filter(pk=email_id).update(last_updated=now, **fields)
        if get_log_level() >= 1:
            Log.objects.create(
                email_id=email_id,
                status=STATUS.failed,
                message=message,
                exception_type=type(error).__name__,
            )
    return celery_retries_left and fields["status"] == STATUS.requeued


def is_permanent(error):
    """True when sending the same message again cannot succeed: the mail server or the
    email service's API refused it. Without an answer at all it is worth another try."""
    if isinstance(error, AnymailAPIError):
        # A 4xx answer, but not 429 "slow down".
        status = api_status(error)
        return status is not None and 400 <= status < 500 and status != 429
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return not isinstance(error, OSError | smtplib.SMTPException)


def api_status(error):
    """The HTTP status of an email service's answer, or None if it did not answer."""
    if error.status_code is not None:
        return error.status_code
    if isinstance(error.response, dict):  # boto3's parsed answer, from Amazon SES
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def claim_due(limit):
    """Take up to `limit` mails that are due for a hand-off to the workers.

    Due: the scheduled time has come and nothing happened to the mail since;
    or it was never handed off (the process that sent it died first); or
    nothing happened to it for MAIL_HANDOFF_TIMEOUT (its task was lost).
    Rows locked by another sweeper are skipped, so sweepers on several hosts
    share the backlog instead of handing out the same mail twice.
    """
    now = timezone.now()
    never_handed_off = Q(
        scheduled_time=None,
        last_updated__lt=F("created") + UNTOUCHED,
        created__lt=now - NEVER_HANDED_OFF_AFTER,
    )
    due = (
        Q(scheduled_time__lte=now, scheduled_time__gte=F("last_updated"))
        | never_handed_off
        | Q(last_updated__lt=now - settings.MAIL_HANDOFF_TIMEOUT)
    )
    with transaction.atomic():
        emails = list(
            Email.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(due, not_expired(now), status__in=PENDING)
            .select_related("template")
            .prefetch_related("attachments")
            .order_by("-priority", "pk")[:limit]
        )
        Email.objects.filter(pk__in=[email.pk for email in emails]).update(
            last_updated=timezone.now()
        )
    return emails


def mark_handed_off(emails):
    """Note the hand-off on mails still waiting for a worker (see claim_due)."""
    if emails:
        handed_off = Email.objects.filter(pk__in=[email.pk for email in emails], status__in=PENDING)
        handed_off.update(last_updated=timezone.now())


def leave_for_sweeper(emails):
    """Make mails that could not be handed off due at the sweeper's next run."""
    if emails:
        left = Email.objects.filter(pk__in=[email.pk for email in emails], status__in=PENDING)
        left.update(scheduled_time=timezone.now())


def rescue_interrupted():
    """Queue again the mails whose worker died while sending them; return how many."""
    now = timezone.now()
    stale = Email.objects.filter(status=None, last_updated__lt=now - settings.MAIL_SENDING_TIMEOUT)
    with transaction.atomic():
        ids = list(stale.select_for_update(skip_locked=True).values_list("pk", flat=True))
        Email.objects.filter(pk__in=ids).update(
            status=STATUS.requeued, scheduled_time=now, last_updated=now
        )
        Log.objects.bulk_create(
            Log(
                email_id=pk,
                status=STATUS.failed,
                message="interrupted while sending; the server may have accepted it",
                exception_type="Interrupted",
            )
            for pk in ids
        )
    return len(ids)


def fail_expired():
    """Fail the pending mails whose expires_at has passed; return how many."""
    now = timezone.now()
    expired = Email.objects.filter(status__in=PENDING, expires_at__lte=now)
    with transaction.atomic():
        ids = list(expired.select_for_update(skip_locked=True).values_list("pk", flat=True))
        Email.objects.filter(pk__in=ids).update(status=STATUS.failed, last_updated=now)
        Log.objects.bulk_create(
            Log(email_id=pk, status=STATUS.failed, message="expired before it could be sent")
            for pk in ids
        )
    return len(ids)
