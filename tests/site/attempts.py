"""Print the failed attempts counted over every mail, and the mails in each state, as JSON."""

import json
from collections import Counter

import _site  # noqa: F401
from django.apps import apps
from django.db.models import Sum

Delivery = apps.get_model("delivery", "Delivery")
failed = Delivery.objects.aggregate(Sum("failed_attempts"))["failed_attempts__sum"] or 0
states = Counter(Delivery.objects.values_list("state", flat=True))
print(json.dumps({"failed_attempts": failed, "states": states}))
