"""What /healthz/mail asks of the mail itself (config/health.py asks the rest): mail waiting
past its time, a fault of the site's setup, the provider's limits, the mail failed lately."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from . import models, pace, state

OK = "ok"  # what a check answers when all is well; anything else says why not


def checks():
    """The oldest mail waiting past its time, and a fault of the site's setup."""
    now = timezone.now()
    late = models.Delivery.objects.filter(state__in=state.PENDING, due__lte=now).aggregate(
        Min("due")
    )["due__min"]
    waiting = OK
    if late and now - late > settings.MAIL_HEALTH_MAX_DELAY:
        waiting = f"a mail has waited {now - late} past its time"
    faulty = models.Delivery.objects.filter(state=models.State.RETRYING, fault=models.Fault.SETUP)
    setup = OK
    if last := faulty.order_by("-changed").first():
        setup = f"{faulty.count()} mails wait for the site's mail setup: {last.reason}"
    return {"waiting": waiting, "setup": setup}


def limits_warning():
    """OK, or why mail waits for the provider's limits."""
    standing = pace.standing()
    notes = []
    if paused := standing["paused_until"]:
        notes.append(f"paused until {paused:%H:%M:%S} UTC: {standing['pause_reason']}")
    if standing["quota"] and standing["quota_used"] >= standing["quota"]:
        notes.append(f"the daily quota of {standing['quota']} is spent")
    if held := models.Delivery.objects.filter(state=models.State.HELD).count():
        notes.append(f"{held} mails held for the provider's limits")
    return "; ".join(notes) or OK


def failed_last_hour():
    since = timezone.now() - timedelta(hours=1)
    return models.Delivery.objects.filter(state=models.State.FAILED, changed__gte=since).count()
