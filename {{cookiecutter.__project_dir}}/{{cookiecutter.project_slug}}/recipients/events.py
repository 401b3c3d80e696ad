"""Delivery events from the email services: anymail's webhook views parse what a service
posts and send each event through `anymail.signals.tracking` to `record`.

An event names the service's message id (which the worker kept, see models.Recipient) and
the recipient. Each is recorded once on that recipient of that post_office mail; a hard
bounce or a complaint suppresses the address for all mail, an unsubscribe for bulk mail.
An event for a message this site does not know is logged and ignored: the webhook still
answers 200, so the service does not post it again and again.
"""

import hashlib
import json
import logging
from typing import NamedTuple

from anymail.signals import EventType
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import suppression
from .models import Event, Reason, Recipient, Scope

logger = logging.getLogger(__name__)

# Bounces the services report that are not final for the address (anymail reports them as
# "bounced" too, or as "deferred"): {anymail's esp_name: test of the posted event}.
SOFT_BOUNCES = {
    "Amazon SES": lambda raw: raw.get("bounce", {}).get("bounceType") != "Permanent",
    "Brevo": lambda raw: raw.get("event") == "soft_bounce",
    "Postmark": lambda raw: raw.get("Type") in ("SoftBounce", "Transient", "DnsError"),
    # SendGrid's "blocked" bounces are temporary refusals of the receiving server.
    "SendGrid": lambda raw: raw.get("type") == "blocked",
    # Mailgun's temporary failures arrive as "deferred": its "bounced" are permanent.
    "Mailgun": lambda raw: False,
}
SUPPRESSING = {
    EventType.COMPLAINED: (Reason.COMPLAINT, Scope.ALL),
    EventType.UNSUBSCRIBED: (Reason.UNSUBSCRIBE, Scope.BULK),
}


class Tracked(NamedTuple):
    """A recipient an email service took, and the service's message id its events will name."""

    address: str
    service: str  # anymail's esp_name
    message_id: str


def expect(email_id, tracked):
    """The sender handed mail `email_id` to an email service: its events for these
    recipients (Tracked) are recorded on them. The one writer of Recipient rows."""
    Recipient.objects.bulk_create(
        [
            Recipient(
                email_id=email_id, address=t.address, provider=t.service, message_id=t.message_id
            )
            for t in tracked
        ],
        ignore_conflicts=True,
    )


def record(sender, event, esp_name, **kwargs):
    """anymail's tracking signal: record one event, suppress if it says so."""
    if not event.message_id or not event.recipient:
        logger.warning(
            "%s event %s names no message or recipient: ignored", esp_name, event.event_type
        )
        return
    recipient = Recipient.objects.filter(
        provider=esp_name, message_id=event.message_id, address__iexact=event.recipient
    ).first()
    if recipient is None:
        logger.warning(
            "%s event %s for %s of message %s, which this site did not send: ignored",
            esp_name,
            event.event_type,
            event.recipient,
            event.message_id,
        )
        return
    at = event.timestamp or timezone.now()
    said = " ".join(part for part in (event.description, event.mta_response) if part)
    try:
        with transaction.atomic():
            stored = Event.objects.create(
                recipient=recipient,
                kind=event.event_type,
                at=at,
                description=event.description or "",
                mta_response=event.mta_response or "",
                key=key_of(event, esp_name),
                payload=payload_of(event),
            )
            latest = Recipient.objects.filter(pk=recipient.pk)
            latest.exclude(last_event_at__gt=at).update(
                last_event=event.event_type, last_event_at=at, last_said=said[:2000]
            )
            if event.event_type == EventType.BOUNCED:
                latest.update(bounced=True)
            reason, scope = suppression_for(event, esp_name)
            if reason:
                detail = f"{esp_name}: {said}" if said else esp_name
                suppression.suppress(recipient.address, reason, scope, detail, event=stored)
    except IntegrityError:
        logger.info(
            "%s event %s for %s again: recorded once", esp_name, event.event_type, event.recipient
        )


def suppression_for(event, esp_name):
    """(reason, scope) if the event puts the address on the list, else (None, None)."""
    if event.event_type == EventType.BOUNCED:
        soft = SOFT_BOUNCES.get(esp_name, lambda raw: False)
        if not soft(event.esp_event if isinstance(event.esp_event, dict) else {}):
            return Reason.HARD_BOUNCE, Scope.ALL
    return SUPPRESSING.get(event.event_type, (None, None))


def payload_of(event):
    raw = event.esp_event
    return raw if isinstance(raw, dict | list) else {"posted": str(raw)}


def key_of(event, esp_name):
    """The same event posted twice has the same key: the service's own event id where it
    gives one, else what it posted."""
    given = event.event_id or json.dumps(payload_of(event), sort_keys=True, default=str)
    text = "\n".join([esp_name, given, event.recipient.lower(), event.event_type])
    return hashlib.sha256(text.encode()).hexdigest()
