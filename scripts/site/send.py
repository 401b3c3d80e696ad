"""Send mails through the site's own send_mail(); print the web-side cost in ms as JSON.

    send.py --plain N --rich N

A rich mail has an HTML alternative and a binary PDF attachment (see samples.py).
"""

import argparse
import json
import time

import _site  # noqa: F401
from django.core.mail import EmailMultiAlternatives, send_mail
from samples import RICH_HTML, RICH_PDF


def rich(n):
    message = EmailMultiAlternatives(f"rich {n}", f"Hello {n}", to=[f"rich{n}@example.com"])
    message.attach_alternative(RICH_HTML.format(n=n), "text/html")
    message.attach(f"report-{n}.pdf", RICH_PDF, "application/pdf")
    message.send()


def plain(n):
    send_mail(f"plain {n}", f"Hello {n}", None, [f"plain{n}@example.com"])


parser = argparse.ArgumentParser()
parser.add_argument("--plain", type=int, default=0)
parser.add_argument("--rich", type=int, default=0)
args = parser.parse_args()

costs = []
for send, count in ((plain, args.plain), (rich, args.rich)):
    for n in range(count):
        started = time.perf_counter()
        send(n)
        costs.append((time.perf_counter() - started) * 1000)
print(json.dumps(costs))
