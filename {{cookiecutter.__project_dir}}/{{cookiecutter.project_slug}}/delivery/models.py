from django.db import models
from post_office.models import Email


class State(models.TextChoices):
    """Where a mail stands. Only state.py moves a mail from one to another."""

    QUEUED = "queued", "queued"  # written; its process hands it to the broker after the commit
    SCHEDULED = "scheduled", "scheduled"  # waits for its scheduled time
    HANDED_OFF = "handed_off", "handed off"  # a task for it is in the broker
    SENDING = "sending", "sending"  # a worker is talking to the mail server
    RETRYING = "retrying", "retrying"  # an attempt failed for a passing reason; another follows
    SENT = "sent", "sent"  # the mail server accepted it
    FAILED = "failed", "failed"  # refused for good, or given up
    EXPIRED = "expired", "expired"  # its expires_at passed before it could be sent


class Fault(models.TextChoices):
    """Why the last attempt failed: the message, a passing trouble, or the site's own setup."""

    NONE = "", "none"
    REFUSED = "refused", "refused"
    PASSING = "passing", "passing"
    SETUP = "setup", "the site's setup"


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
    fault = models.CharField(max_length=8, choices=Fault, default=Fault.NONE, blank=True)
    reason = models.TextField(blank=True, help_text="What the mail server or service said last.")
    # {address: the server's answer} for each recipient refused while the others were accepted.
    refused = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["state", "due"])]

    def __str__(self):
        return f"mail {self.email_id}: {self.get_state_display()}"
