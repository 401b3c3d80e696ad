import secrets

from django.conf import settings
from django.db import models
from post_office.models import Email


class MessageIdField(models.CharField):
    """A service's message id, kept and looked up without the angle brackets some forms carry:
    Brevo's and Mailgun's send APIs answer `<id@domain>`, their webhooks post `id@domain`
    (anymail adds the brackets back for Mailgun only); Amazon SES, Postmark, SendGrid (anymail's
    id) and Resend use bare ids everywhere."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("<") and value.endswith(">"):
                value = value[1:-1].strip()
        return value


class Recipient(models.Model):
    """One recipient of one sent mail, as the email service knows it: the message id the
    service gave it (its events name that id, not the Message-ID header), and what the
    service said about it last."""

    email = models.ForeignKey(Email, models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=254)
    provider = models.CharField(max_length=32, help_text="The email service, as anymail names it.")
    message_id = MessageIdField(max_length=255, help_text="The service's id for the message.")
    last_event = models.CharField(max_length=16, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_said = models.TextField(blank=True, help_text="What the service said with that event.")
    # The service reported a bounce for it (hard or soft); see also Suppression.
    bounced = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "message_id", "address"], name="one_recipient_per_message"
            )
        ]

    def __str__(self):
        return f"{self.address} of mail {self.email_id}"


class Event(models.Model):
    """What the email service said about a recipient, once per event however often it is
    posted (`key`)."""

    recipient = models.ForeignKey(Recipient, models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, help_text="anymail's event type.")
    at = models.DateTimeField(help_text="When it happened, as the service says.")
    received = models.DateTimeField(auto_now_add=True)
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    key = models.CharField(max_length=64, unique=True, editable=False)
    payload = models.JSONField(default=dict, help_text="The event as the service posted it.")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self):
        return f"{self.kind} for {self.recipient.address}"


class Reason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "hard bounce"
    COMPLAINT = "complaint", "complaint"
    UNSUBSCRIBE = "unsubscribe", "unsubscribed at the service"
    ONE_CLICK = "one_click", "one-click unsubscribe"
    SMTP_REFUSAL = "smtp_refusal", "refused by the mail server"
    BY_HAND = "by_hand", "by hand"


class Scope(models.TextChoices):
    ALL = "all", "all mail"
    BULK = "bulk", "bulk mail only"


class Suppression(models.Model):
    """An address the site does not mail (all mail, or bulk mail only) until staff lift it.
    A lifted one stays as a record."""

    address = models.CharField(max_length=254, help_text="Stored in lower case.")
    scope = models.CharField(max_length=4, choices=Scope, default=Scope.ALL)
    reason = models.CharField(max_length=16, choices=Reason, default=Reason.BY_HAND)
    detail = models.TextField(blank=True, help_text="What the service or server said.")
    event = models.ForeignKey(Event, models.SET_NULL, null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lifted = models.DateTimeField(null=True, blank=True, editable=False)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["address", "scope"],
                condition=models.Q(lifted=None),
                name="one_active_suppression_per_address_and_scope",
            )
        ]

    def __str__(self):
        return f"{self.address} ({self.get_scope_display()}: {self.get_reason_display()})"

    def save(self, *args, **kwargs):
        self.address = self.address.strip().lower()
        super().save(*args, **kwargs)


def new_token():
    return secrets.token_urlsafe(16)


class UnsubscribeLink(models.Model):
    """The token of an address's one-click unsubscribe links (unsubscribe.py). Random, not the
    address signed: a link names nobody to whoever reads it (access logs, a forwarded mail),
    outlives a change of SECRET_KEY, stops working when its row is deleted, and is short
    enough for the List-Unsubscribe header to fit one line."""

    address = models.CharField(max_length=254, unique=True, help_text="Stored in lower case.")
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"unsubscribe link of {self.address}"
