"""Who must not get a mail, asked by the worker before it hands a mail to the transport, and
how addresses get on the list.

A hard bounce or a complaint stops all mail to the address; an unsubscribe (at the email
service, or the one-click link of a bulk mail) stops bulk mail only. Bulk mail is mail whose
post_office row has the header `Precedence: bulk` (see unsubscribe.py).
"""

import logging
from email.utils import getaddresses

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import Reason, Scope, Suppression

logger = logging.getLogger(__name__)


def address_of(recipient):
    """The bare address of "Name <address>", in lower case."""
    return getaddresses([recipient])[0][1].strip().lower()


def is_bulk(email):
    """True for a post_office mail marked bulk: its headers hold `Precedence: bulk`."""
    headers = {name.lower(): str(value) for name, value in (email.headers or {}).items()}
    return headers.get("precedence", "").strip().lower() == "bulk"


def active():
    return Suppression.objects.filter(lifted=None)


def on_list(addresses):
    """{address: its active suppressions, oldest first} for those of `addresses` on the list,
    in one query."""
    wanted = {address_of(address) for address in addresses}
    if not wanted:
        return {}
    found = {}
    for row in active().filter(address__in=wanted).order_by("created"):
        found.setdefault(row.address, []).append(row)
    return found


def suppressed(addresses, bulk, listed=None):
    """{address: why} for those of `addresses` the site must not mail (for a bulk mail, the
    bulk-only suppressions count too). `listed`: what on_list() found for them, if asked."""
    listed = on_list(addresses) if listed is None else listed
    scopes = [Scope.ALL, Scope.BULK] if bulk else [Scope.ALL]
    held = {}
    for address in addresses:
        rows = [row for row in listed.get(address_of(address), []) if row.scope in scopes]
        if rows:
            row = rows[-1]
            held[address] = (
                f"suppressed since {timezone.localtime(row.created):%Y-%m-%d %H:%M}"
                f" ({row.get_reason_display()}{': ' + row.detail if row.detail else ''})"
            )
    return held


def hold_back(email, message, listed):
    """Take the suppressed recipients off the outgoing message; return {address: why}.
    `listed`: what on_list() found for the mail's recipients."""
    bulk = is_bulk(email)
    held = suppressed(message.to + message.cc + message.bcc, bulk, listed)
    gone = {address_of(recipient) for recipient in held}
    for field in ("to", "cc", "bcc"):
        kept = [
            recipient for recipient in getattr(message, field) if address_of(recipient) not in gone
        ]
        setattr(message, field, kept)
    return held


def suppress(address, reason, scope=Scope.ALL, detail="", event=None, user=None):
    """Put an address on the list (nothing changes if it is on it already for that scope, or
    for all mail). Returns the active suppression."""
    address = address.strip().lower()
    covering = active().filter(Q(scope=Scope.ALL) | Q(scope=scope), address=address).first()
    if covering:
        return covering
    try:
        with transaction.atomic():
            row = Suppression.objects.create(
                address=address,
                scope=scope,
                reason=reason,
                detail=detail[:1000],
                event=event,
                created_by=user,
            )
    except IntegrityError:  # another process put it on the list just now
        return active().get(address=address, scope=scope)
    logger.info("Suppressed %s for %s: %s %s", address, scope, reason, detail)
    return row


def learn_from_refusals(refused):
    """Refusals of an SMTP server ({address: (code, answer)}): the codes in
    MAIL_SUPPRESS_SMTP_CODES put the address on the list."""
    for address, (code, answer) in refused.items():
        if code in settings.MAIL_SUPPRESS_SMTP_CODES:
            if isinstance(answer, bytes):
                answer = answer.decode(errors="replace")
            suppress(address_of(address), Reason.SMTP_REFUSAL, detail=f"{code} {answer}")


def lift(suppressions, user):
    """Staff lift these suppressions: the addresses get mail again. Returns those lifted."""
    lifted = list(suppressions.filter(lifted=None))
    Suppression.objects.filter(pk__in=[row.pk for row in lifted]).update(
        lifted=timezone.now(), lifted_by=user
    )
    for row in lifted:
        logger.info("%s lifted the suppression of %s (%s)", user, row.address, row.scope)
    return lifted
