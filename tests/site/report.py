"""Print what the site recorded for every mail, as JSON: its delivery state, post_office's
status (which must agree), attempts, the last error and the refused recipients."""

import json

import _site  # noqa: F401
from django.db.models import Prefetch
from django.utils import timezone
from post_office.models import STATUS, Email, Log

POST_OFFICE_STATUS = {None: "none", **dict(Email.STATUS_CHOICES)}
failures = Prefetch("logs", Log.objects.filter(status=STATUS.failed).order_by("-pk"), to_attr="failures")
emails = Email.objects.select_related("template", "delivery").prefetch_related(failures).order_by("pk")
now = timezone.now()
print(
    json.dumps(
        [
            {
                "id": email.pk,
                "to": ", ".join(email.to),
                "subject": email.subject or email.template.subject,
                "status": email.delivery.state,
                "post_office status": str(POST_OFFICE_STATUS[email.status]),
                "failed attempts": email.delivery.failed_attempts,
                "last error": email.failures[0].message if email.failures else "",
                "refused": email.delivery.refused,
                "scheduled": email.scheduled_time and email.scheduled_time.isoformat(),
                "expired": bool(email.expires_at and email.expires_at <= now),
                "message_id": email.message_id,
            }
            for email in emails
        ]
    )
)
