"""Record a sent mail to ADDRESS whose email service (anymail's name for it) gave it
MESSAGE_ID, as the worker would: known_recipient.py SERVICE MESSAGE_ID ADDRESS."""

import sys

import _site  # noqa: F401
from django.apps import apps
from django.utils import timezone
from post_office.models import STATUS, Email

service, message_id, address = sys.argv[1:]
email = Email.objects.create(from_email="noreply@example.com", to=[address], status=STATUS.sent)
apps.get_model("delivery", "Delivery").objects.update_or_create(
    email=email, defaults={"state": "sent", "changed": timezone.now()}
)
apps.get_model("recipients", "Recipient").objects.create(
    email=email, address=address, provider=service, message_id=message_id
)
print(email.pk)
