"""Print what the recipients app recorded, as JSON: the mails (state, refused), each
recipient with its last event, how many events, and the suppressions in force."""

import json

import _site  # noqa: F401
from django.apps import apps
from django.utils import timezone

Delivery = apps.get_model("delivery", "Delivery")
Recipient = apps.get_model("recipients", "Recipient")
Event = apps.get_model("recipients", "Event")
Suppression = apps.get_model("recipients", "Suppression")
print(
    json.dumps(
        {
            "mails": {
                str(row.email_id): {"state": row.state, "refused": row.refused, "reason": row.reason}
                for row in Delivery.objects.all()
            },
            "recipients": {
                row.address: {
                    "mail": row.email_id,
                    "last": row.last_event,
                    "at": row.last_event_at and f"{timezone.localtime(row.last_event_at):%Y-%m-%d %H:%M:%S}",
                    "events": row.events.count(),
                }
                for row in Recipient.objects.order_by("pk")
            },
            "events": Event.objects.count(),
            "suppressed": sorted(
                [row.address, row.scope, row.reason, row.pk]
                for row in Suppression.objects.filter(lifted=None)
            ),
        }
    )
)
