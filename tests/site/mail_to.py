"""Send one mail through the site's own code: mail_to.py SUBJECT ADDRESS... [--bulk]
(--bulk marks it bulk mail: the header Precedence: bulk). Prints its id as JSON."""

import argparse
import json

import _site  # noqa: F401
from django.core.mail import EmailMessage
from post_office.models import Email

parser = argparse.ArgumentParser()
parser.add_argument("subject")
parser.add_argument("to", nargs="+")
parser.add_argument("--bulk", action="store_true")
args = parser.parse_args()

headers = {"Precedence": "bulk"} if args.bulk else {}
EmailMessage(args.subject, "Hello", None, args.to, headers=headers).send()
print(json.dumps(Email.objects.latest("pk").pk))
