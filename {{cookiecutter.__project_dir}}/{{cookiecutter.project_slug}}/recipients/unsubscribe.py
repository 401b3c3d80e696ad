"""One-click unsubscribe (RFC 8058) for bulk mail.

A mail is bulk when its post_office row has the header `Precedence: bulk` (send_mail(...,
headers={"Precedence": "bulk"}) or mail.send(..., headers=...)). The worker gives such a mail,
when it has one recipient, `List-Unsubscribe` (this site's URL with the address's random token,
models.UnsubscribeLink, and UNSUBSCRIBE_MAILTO if set) and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`, each written on one line as RFC 8058 asks
(a longer line would otherwise reach the server as an RFC 2047 encoded word, which mailbox
providers do not read there). A mail with several recipients gets no
such header (one link would unsubscribe them all): send bulk mail one recipient a mail.

A POST to the URL, as mail programs send it, with no login, puts the address on the list for
bulk mail only; transactional mail still reaches it. A GET shows a page with a button that
makes the POST (link checkers follow GETs: those never unsubscribe anybody).
"""

import logging
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import suppression
from .models import Reason, Scope, UnsubscribeLink

logger = logging.getLogger(__name__)

# The one-click POST carries one short field; anything much larger is not one.
MAX_BODY = 1024


def token_for(address):
    """The address's token: the same for every mail to it, made with its first bulk mail."""
    address = address.strip().lower()
    try:
        with transaction.atomic():
            link, _ = UnsubscribeLink.objects.get_or_create(address=address)
    except IntegrityError:  # another worker made it just now
        link = UnsubscribeLink.objects.get(address=address)
    return link.token


def address_in(token):
    """The address a token stands for, or None if this site did not make it."""
    link = UnsubscribeLink.objects.filter(token=token).first()
    return link.address if link else None


class OneLine(str):
    """A header value the mail is written with on one line, however long (RFC 5322 allows 998
    characters): Python's email package would fold a long URL into an encoded word. It uses
    the header object protocol of email.policy (a `name` and a `fold` method)."""

    def __new__(cls, name, value):
        line = super().__new__(cls, value)
        line.name = name
        return line

    def __getnewargs__(self):  # copies and pickles keep the name
        return self.name, str(self)

    def fold(self, *, policy):
        return f"{self.name}: {self}{policy.linesep}"


def add_headers(email, message):
    """Give a bulk mail with one recipient its List-Unsubscribe headers."""
    if not suppression.is_bulk(email):
        return
    recipients = message.to + message.cc + message.bcc
    if len(recipients) != 1:
        logger.warning(
            "Bulk mail %s has %d recipients: sent without List-Unsubscribe",
            email.pk,
            len(recipients),
        )
        return
    address = suppression.address_of(recipients[0])
    url = settings.SITE_URL.rstrip("/") + reverse("unsubscribe", args=[token_for(address)])
    targets = [f"<{url}>"]
    if settings.UNSUBSCRIBE_MAILTO:
        subject = quote(f"unsubscribe {address}")
        targets.append(f"<mailto:{settings.UNSUBSCRIBE_MAILTO}?subject={subject}>")
    for name, value in (
        ("List-Unsubscribe", ", ".join(targets)),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ):
        message.extra_headers[name] = OneLine(name, value)


@csrf_exempt  # mail programs post without a form of ours; the token is the proof
@require_http_methods(["GET", "POST"])
def one_click(request, token):
    address = address_in(token)
    if address is None:
        return page(request, 400, "This unsubscribe link is not valid. Nothing was changed.")
    if request.method == "GET":
        return page(request, 200, "", address=address, ask=True)
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError:
        length = MAX_BODY + 1
    if length > MAX_BODY:
        return page(request, 413, "That request was too large. Nothing was changed.")
    if request.POST.get("List-Unsubscribe") != "One-Click":
        return page(
            request, 400, "An unsubscribe request says List-Unsubscribe=One-Click. Nothing changed."
        )
    suppression.suppress(address, Reason.ONE_CLICK, Scope.BULK, detail="List-Unsubscribe-Post")
    return page(request, 200, f"{address} will get no more bulk mail from {settings.SITE_NAME}.")


def page(request, status, text, address="", ask=False):
    context = {"site_name": settings.SITE_NAME, "text": text, "address": address, "ask": ask}
    return render(request, "recipients/unsubscribe.html", context, status=status)
