"""Print how many of the site's mails stand in each post_office status, as JSON."""

import json
from collections import Counter

import _site  # noqa: F401
from post_office.models import Email

names = {None: "sending", **dict(Email.STATUS_CHOICES)}
counts = Counter(str(names[status]) for status in Email.objects.values_list("status", flat=True))
print(json.dumps(counts))
