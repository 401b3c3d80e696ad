"""Record a mail sent DAYS days ago, with an attachment; print its id and the attachment's
file as JSON.

    old_mail.py DAYS
"""

import json
import sys
from datetime import timedelta

import _site  # noqa: F401
from django.apps import apps
from django.core.files.base import ContentFile
from django.utils import timezone
from post_office.models import STATUS, Attachment, Email

email = Email.objects.create(
    from_email="sender@example.com",
    to=["old@example.com"],
    subject="old",
    message="Sent long ago.",
    status=STATUS.sent,
)
apps.get_model("delivery", "Delivery").objects.create(email=email, state="sent", changed=timezone.now())
attachment = Attachment(name="old.txt", mimetype="text/plain")
attachment.file.save("old.txt", ContentFile(b"old"))
attachment.emails.add(email)
Email.objects.filter(pk=email.pk).update(created=timezone.now() - timedelta(days=int(sys.argv[1])))
print(json.dumps({"id": email.pk, "attachment": attachment.file.path}))
