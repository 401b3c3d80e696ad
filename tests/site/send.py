"""Send mails through the site's own code; print the web-side cost of each send in ms, as JSON.

Django's API:      --plain N  --rich N (HTML + PDF)  --content N (see samples.py)
                   --rejected N, --flaky N (to addresses test servers refuse for good, or once)
                   --partly-refused N (to one address servers take and one they refuse)
                   --big N (each with samples.BIG_SIZE bytes attached)
post_office's API: --priority low|medium|high  --scheduled-in S  --expires-in S  (with --plain)
Transactions:      --rolled-back N  (sent inside transactions that roll back)
"""

import argparse
import json
import time
from datetime import timedelta
from email.message import MIMEPart

import _site  # noqa: F401
import samples
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db import transaction
from django.utils import timezone
from post_office import mail

parser = argparse.ArgumentParser()
parser.add_argument("--plain", type=int, default=0)
parser.add_argument("--rich", type=int, default=0)
parser.add_argument("--content", type=int, default=0)
parser.add_argument("--rejected", type=int, default=0)
parser.add_argument("--flaky", type=int, default=0)
parser.add_argument("--partly-refused", type=int, default=0)
parser.add_argument("--big", type=int, default=0)
parser.add_argument("--rolled-back", type=int, default=0)
parser.add_argument("--priority")
parser.add_argument("--scheduled-in", type=float)
parser.add_argument("--expires-in", type=float)
parser.add_argument("--tag", default="", help="added to every subject")
parser.add_argument("--every", type=float, default=0, help="seconds between two sends")
args = parser.parse_args()


def plain(n):
    subject = f"plain {n}{args.tag}"
    if args.priority or args.scheduled_in is not None or args.expires_in is not None:
        now = timezone.now()
        mail.send(
            f"plain{n}@example.com",
            subject=subject,
            message=f"Hello {n}",
            priority=args.priority,
            scheduled_time=args.scheduled_in and now + timedelta(seconds=args.scheduled_in),
            expires_at=args.expires_in and now + timedelta(seconds=args.expires_in),
        )
    else:
        send_mail(subject, f"Hello {n}", None, [f"plain{n}@example.com"])


def rich(n):
    message = EmailMultiAlternatives(f"rich {n}{args.tag}", f"Hello {n}", to=[f"rich{n}@example.com"])
    message.attach_alternative(samples.RICH_HTML.format(n=n), "text/html")
    message.attach(f"report-{n}.pdf", samples.RICH_PDF, "application/pdf")
    message.send()


def content(n):
    message = EmailMultiAlternatives(
        samples.CONTENT_SUBJECT.format(n=n),
        "Plain ✓",
        samples.CONTENT_FROM,
        [samples.CONTENT_TO.format(n=n)],
    )
    message.attach_alternative(samples.CONTENT_HTML, "text/html")
    for attachment in samples.CONTENT_ATTACHMENTS:
        message.attach(*attachment)
    logo = MIMEPart()
    logo.set_content(
        samples.LOGO_PNG, "image", "png", disposition="inline", filename="logo.png", cid=samples.LOGO_CID
    )
    message.attach(logo)
    message.send()


def rejected(n):
    send_mail(f"rejected {n}{args.tag}", "Refused", None, [f"reject{n}@example.com"])


def flaky(n):
    send_mail(f"flaky {n}{args.tag}", "Refused once", None, [f"flaky{n}@example.com"])


def partly_refused(n):
    send_mail(f"partly {n}{args.tag}", "Half", None, [f"ok{n}@example.com", f"reject{n}@example.com"])


def big(n):
    message = EmailMultiAlternatives(f"big {n}{args.tag}", "A large attachment", to=[f"big{n}@example.com"])
    message.attach("big.bin", samples.big_attachment(), "application/octet-stream")
    message.send()


def rolled_back(n):
    try:
        with transaction.atomic():
            send_mail(f"rolled back {n}{args.tag}", "Never sent", None, [f"never{n}@example.com"])
            raise RuntimeError("roll back")
    except RuntimeError:
        pass


costs = []
for send, count in (
    (plain, args.plain),
    (rich, args.rich),
    (content, args.content),
    (rejected, args.rejected),
    (flaky, args.flaky),
    (partly_refused, args.partly_refused),
    (big, args.big),
    (rolled_back, args.rolled_back),
):
    for n in range(count):
        started = time.perf_counter()
        send(n)
        costs.append((time.perf_counter() - started) * 1000)
        time.sleep(args.every)
print(json.dumps(costs))
