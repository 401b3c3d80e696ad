"""A day passes for the daily quota: the counted hours and the held mails' times move a day back."""

import json
from datetime import timedelta

import _site  # noqa: F401
from django.apps import apps
from django.db.models import F

DAY = timedelta(hours=24, minutes=1)
Usage = apps.get_model("delivery", "Usage")
Delivery = apps.get_model("delivery", "Delivery")
moved = Usage.objects.update(hour=F("hour") - DAY)
held = Delivery.objects.filter(state="held").update(due=F("due") - DAY)
print(json.dumps({"hours": moved, "held": held}))
