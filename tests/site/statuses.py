"""Print how many of the site's mails are in each delivery state, as JSON."""

import json
from collections import Counter

import _site  # noqa: F401
from django.apps import apps

Delivery = apps.get_model("delivery", "Delivery")
print(json.dumps(Counter(Delivery.objects.values_list("state", flat=True))))
