"""Send N bulk mails (Precedence: bulk) with Django's API, each in its own transaction; print nothing.

newsletter.py N
"""

import argparse

import _site  # noqa: F401
from django.core.mail import EmailMessage
from django.db import transaction

parser = argparse.ArgumentParser()
parser.add_argument("count", type=int)
args = parser.parse_args()

for n in range(args.count):
    with transaction.atomic():
        EmailMessage(
            f"newsletter {n}", f"News {n}", to=[f"reader{n}@example.com"], headers={"Precedence": "bulk"}
        ).send()
