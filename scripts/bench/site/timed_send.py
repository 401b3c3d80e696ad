"""Send mails with send_mail() as a view would, each in its own transaction; print the costs.

    timed_send.py --count N [--warm-up N] [--using MAILER]

Prints JSON: "started" and "finished", time.monotonic() when the first counted
send began and the last one returned, and "costs_ms", what each counted
send_mail() took including the commit (and with it the hand-off that waits for
the commit). Warm-up sends come first and are
neither counted nor timed.
"""

import argparse
import json
import time

import _site  # noqa: F401
from django.core.mail import send_mail
from django.db import transaction

parser = argparse.ArgumentParser()
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--warm-up", type=int, default=0)
parser.add_argument("--using", help="the mailer to send through; the default mailer if unset")
args = parser.parse_args()


def send(n):
    with transaction.atomic():
        send_mail(f"bench {n}", f"Hello {n}", None, [f"user{n}@example.com"], using=args.using)


for n in range(args.warm_up):
    send(-n - 1)
costs = []
started = time.monotonic()
for n in range(args.count):
    began = time.perf_counter()
    send(n)
    costs.append((time.perf_counter() - began) * 1000)
print(json.dumps({"started": started, "finished": time.monotonic(), "costs_ms": costs}))
