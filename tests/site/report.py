"""Print what post_office recorded for every mail of the site, as JSON."""

import json

import _site  # noqa: F401
from django.db.models import Prefetch
from django.utils import timezone
from post_office.models import STATUS, Email, Log

names = {None: "sending", **dict(Email.STATUS_CHOICES)}
failures = Prefetch("logs", Log.objects.filter(status=STATUS.failed).order_by("-pk"), to_attr="failures")
now = timezone.now()
print(
    json.dumps(
        [
            {
                "id": email.pk,
                "to": ", ".join(email.to),
                "subject": email.subject or email.template.subject,
                "status": str(names[email.status]),
                "failed attempts": email.number_of_retries or 0,
                "last error": email.failures[0].message if email.failures else "",
                "scheduled": email.scheduled_time and email.scheduled_time.isoformat(),
                "expired": bool(email.expires_at and email.expires_at <= now),
                "message_id": email.message_id,
            }
            for email in Email.objects.select_related("template").prefetch_related(failures).order_by("pk")
        ]
    )
)
