"""Print what post_office recorded for every mail of the site, as JSON."""

import json

import _site  # noqa: F401
from post_office.models import Email

names = {None: "sending", **dict(Email.STATUS_CHOICES)}
print(
    json.dumps(
        [
            {
                "id": email.pk,
                "to": ", ".join(email.to),
                "subject": email.subject or email.template.subject,
                "status": str(names[email.status]),
                "failed attempts": email.number_of_retries or 0,
                "message_id": email.message_id,
            }
            for email in Email.objects.select_related("template").order_by("pk")
        ]
    )
)
