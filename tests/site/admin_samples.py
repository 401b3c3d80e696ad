"""Give the site an admin user and mails in every state, the way the mail path leaves them.

admin_samples.py USERNAME PASSWORD
"""

import importlib
import smtplib
import sys
from datetime import timedelta

import _site  # noqa: F401
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from post_office import mail

state = importlib.import_module(f"{settings.SITE_PACKAGE}.delivery.state")
sender = importlib.import_module(f"{settings.SITE_PACKAGE}.delivery.sender")
# The states below are set here, as workers would leave them: nothing goes to the broker.
importlib.import_module(f"{settings.SITE_PACKAGE}.delivery.handoff").after_commit = lambda emails: None

get_user_model().objects.create_superuser(sys.argv[1], "admin@example.com", sys.argv[2])
now = timezone.now()


def sent(to, subject, refused=None):
    email = mail.send(to, subject=subject, message="Hello")
    sender.take(email, email.message_id)
    state.sent(email.pk, refused or {})


def failed_attempt(to, subject, error, fault):
    email = mail.send(to, subject=subject, message="Hello")
    sender.take(email, email.message_id)
    sender.failed(email.pk, error, fault, retries_left=False)


for n in range(3):
    sent(f"reader{n}@example.com", f"Your invoice {n + 1}")
sent(
    ["ada@example.com", "bob@example.com", "nobody@example.com"],
    "Team update",
    {"nobody@example.com": "550 5.1.1 No such user here"},
)
failed_attempt(
    "cy@example.com", "Password reset", smtplib.SMTPDataError(451, b"4.3.0 Try again later"), "passing"
)
failed_attempt("dee@example.com", "Welcome", smtplib.SMTPDataError(554, b"5.7.1 Rejected as spam"), "refused")
mail.send(
    "eve@example.com", subject="Newsletter, next week", message="Soon", scheduled_time=now + timedelta(days=7)
)
mail.send("fay@example.com", subject="Receipt", message="Thanks")
taken = mail.send("gus@example.com", subject="Order shipped", message="On its way")
sender.take(taken, taken.message_id)
