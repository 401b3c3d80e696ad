from django.conf import settings
from django.db import models
from django.utils import timezone
from post_office.models import Email, Log


class State(models.TextChoices):
    """Where a mail stands. Only state.py moves a mail from one to another."""

    QUEUED = "queued", "queued"  # written; its process hands it to the broker after the commit
    SCHEDULED = "scheduled", "scheduled"  # waits for its scheduled time
    HANDED_OFF = "handed_off", "handed off"  # a task for it is in the broker
    SENDING = "sending", "sending"  # a worker is talking to the mail server
    RETRYING = "retrying", "retrying"  # an attempt failed for a passing reason; another follows
    HELD = "held", "held"  # waits for the provider's limits: the rate, a pause, the daily quota
    SENT = "sent", "sent"  # the mail server accepted it
    FAILED = "failed", "failed"  # refused for good, or given up
    EXPIRED = "expired", "expired"  # its expires_at passed before it could be sent


class Fault(models.TextChoices):
    """Why the last attempt failed: the message, a passing trouble, or the site's own setup."""

    NONE = "", "none"
    REFUSED = "refused", "refused"
    PASSING = "passing", "passing"
    SETUP = "setup", "the site's setup"
    THROTTLED = "throttled", "throttled"  # the provider asked the site to slow down


class Outcome(models.TextChoices):
    """What a failed attempt's Log row records, in the states' words: a failed attempt that is
    retried is not a failed mail."""

    RETRYING = "retrying", "retrying"
    FAILED = "failed", "failed"


class Lane(models.TextChoices):
    """Transactional mail never waits behind bulk mail (delivery/lanes.py)."""

    TRANSACTIONAL = "transactional", "transactional"
    BULK = "bulk", "bulk"


class Delivery(models.Model):
    """The delivery of one post_office Email: its state, and when something is due to happen.

    `due` means, by state: queued, the time by which its own process should have handed it
    off; scheduled, its scheduled time; handed off, the time after which its task counts as
    lost; sending, the time after which its worker counts as dead; retrying, the next
    attempt. The sweeper acts on every mail whose `due` has passed.
    """

    email = models.OneToOneField(Email, models.CASCADE, primary_key=True, related_name="delivery")
    state = models.CharField(max_length=16, choices=State, default=State.QUEUED)
    due = models.DateTimeField(null=True, blank=True)
    changed = models.DateTimeField()
    # Counts every change: a process that read a version moves the mail only if it is unchanged.
    version = models.PositiveIntegerField(default=0)
    failed_attempts = models.PositiveIntegerField(default=0)
    fault = models.CharField(max_length=16, choices=Fault, default=Fault.NONE, blank=True)
    reason = models.TextField(blank=True, help_text="What the mail server or service said last.")
    # {address: the server's answer} for each recipient refused while the others were accepted.
    refused = models.JSONField(default=dict, blank=True)
    lane = models.CharField(max_length=16, choices=Lane, default=Lane.TRANSACTIONAL)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["state", "due"])]

    def __str__(self):
        return f"mail {self.email_id}: {self.get_state_display()}"


class LogOutcome(models.Model):
    """The outcome of a failed attempt that a post_office Log row records (its status says
    only "failed"). Written with the Log row by state.move; the admin reads it."""

    log = models.OneToOneField(Log, models.CASCADE, primary_key=True, related_name="outcome")
    outcome = models.CharField(max_length=16, choices=Outcome)

    def __str__(self):
        return f"log {self.log_id}: {self.outcome}"


def as_stored(moment):
    """A time as the database holds it: post_office takes naive times too, which Django
    stores in the default time zone."""
    if moment is not None and settings.USE_TZ and timezone.is_naive(moment):
        return timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


class Pace(models.Model):
    """The sending pace one mailer shares across every worker (delivery/pace.py). Times are
    seconds since the epoch."""

    mailer = models.CharField(max_length=64, primary_key=True)
    rate = models.FloatField(null=True, help_text="Mails a second now allowed; empty: no limit.")
    next_free = models.FloatField(default=0.0)  # the next slot nobody leased yet
    paused_until = models.FloatField(default=0.0)
    pause_reason = models.TextField(blank=True)
    cut_at = models.FloatField(default=0.0)  # the last slow-down
    raised_at = models.FloatField(default=0.0)  # the last speed-up
    counted_since = models.FloatField(default=0.0)  # accepted mails are counted from here
    accepted = models.PositiveIntegerField(default=0)
    accepted_rate = models.FloatField(default=0.0)  # mails a second accepted in the last count
    throttled = models.PositiveIntegerField(default=0)  # throttling answers in `throttled_hour`
    throttled_hour = models.FloatField(default=0.0)
    # How far apart mails reached the server after their slots lately (pace.py), and when.
    jitter = models.FloatField(default=0.0)
    jitter_at = models.FloatField(default=0.0)
    # After "too many connections": the connections the site holds at most, until then.
    connections = models.PositiveIntegerField(null=True)
    connections_until = models.FloatField(default=0.0)

    def __str__(self):
        return f"pace of {self.mailer}"


class Usage(models.Model):
    """Mails a mailer sent in one hour, for the daily quota (a rolling 24 hours)."""

    mailer = models.CharField(max_length=64)
    hour = models.DateTimeField()
    sent = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailer", "hour"], name="usage_per_hour")]

    def __str__(self):
        return f"{self.mailer} {self.hour:%Y-%m-%d %H}:00: {self.sent}"
