"""The provider's limits the site sends within, read from .env (docs/provider-limits.md).
A bad value stops the site at startup, naming the variable."""

import re

from django.core.exceptions import ImproperlyConfigured

PER = {"s": 1, "m": 60, "h": 3600}
RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")


def rate_limit(value, name="MAIL_RATE_LIMIT"):
    """Mails a second for "14/s", "600/m" or "50000/h"; None for an empty value (no limit)."""
    if not value.strip():
        return None
    match = RATE.match(value)
    if not match or float(match[1]) <= 0:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate such as 14/s, 600/m or 50000/h (empty: no limit)"
        )
    return float(match[1]) / PER[match[2]]


def rate_limits(value, mailers, name="MAIL_RATE_LIMITS"):
    """{alias: mails a second} for "news:10/s,alerts:600/m", each alias one of `mailers`;
    {} for an empty value."""
    limits = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        alias, _, rate = (part.strip() for part in entry.partition(":"))
        if alias not in mailers or not rate:
            raise ImproperlyConfigured(
                f"{name}={value!r}: {entry!r} is not alias:rate with an alias added to MAILERS "
                f"({', '.join(sorted(mailers)) or 'none yet'})"
            )
        limits[alias] = rate_limit(rate, f"{name} {alias}")
    return limits


def count(value, name, default, minimum=1):
    """A whole number of at least `minimum`; `default` for an empty value."""
    if not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number >= {minimum}")
    return number


def percent(value, name, default):
    """A share in percent, 0 to 100 ("10" or "10%"), as a fraction."""
    text = value.strip().removesuffix("%")
    if not text:
        return default
    try:
        share = float(text)
    except ValueError:
        share = -1
    if not 0 <= share <= 100:
        raise ImproperlyConfigured(f"{name}={value!r} is not a percentage from 0 to 100")
    return share / 100
