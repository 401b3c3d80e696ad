"""Queue N mails the way an outage leaves them: rows in the database, none in the broker.

    backlog.py N

The rows are built by post_office (mail.send(commit=False), as send_many()
does), inserted in bulk, and made due for the sweeper's next run.
"""

import sys

import _site  # noqa: F401
from django.db import transaction
from django.utils import timezone
from post_office import mail
from post_office.models import Email

count = int(sys.argv[1])
with transaction.atomic():
    for start in range(0, count, 5000):
        emails = [
            mail.send(f"user{n}@example.com", subject=f"backlog {n}", message=f"Hello {n}", commit=False)
            for n in range(start, min(count, start + 5000))
        ]
        Email.objects.bulk_create(emails)
    Email.objects.update(scheduled_time=timezone.now())
