"""Send N password resets with send_mail(), one every --every seconds; print [[subject, sent at]] as JSON."""

import argparse
import json
import time

import _site  # noqa: F401
from django.core.mail import send_mail

parser = argparse.ArgumentParser()
parser.add_argument("count", type=int)
parser.add_argument("--every", type=float, default=0.5)
args = parser.parse_args()

sent = []
for n in range(args.count):
    subject = f"reset {n}"
    sent.append([subject, time.time()])
    send_mail(subject, "Your link", None, [f"reset{n}@example.com"])
    time.sleep(args.every)
print(json.dumps(sent))
