"""Send the demo's sample mails through the site's own code; print their ids as JSON."""

import json
from datetime import timedelta

import _site  # noqa: F401
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db import transaction
from django.utils import timezone
from post_office import mail
from post_office.models import Email
from samples import RICH_HTML, RICH_PDF

with transaction.atomic():
    send_mail("Plain text", "Sent with django.core.mail.send_mail().", None, ["ada@example.com"])
    rich = EmailMultiAlternatives("HTML with a PDF", "Plain part.", to=["bob@example.com"])
    rich.attach_alternative(RICH_HTML.format(n=1), "text/html")
    rich.attach("report.pdf", RICH_PDF, "application/pdf")
    rich.send()
    mail.send("cy@example.com", template="welcome", context={"name": "Cy"})
    mail.send(
        "dee@example.com",
        subject="Scheduled in 5 seconds",
        message="Handed out by the sweeper once its time came.",
        scheduled_time=timezone.now() + timedelta(seconds=5),
    )
print(json.dumps(list(Email.objects.order_by("pk").values_list("pk", flat=True))))
