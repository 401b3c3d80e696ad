"""Two lanes, so transactional mail never waits behind bulk mail.

Bulk: post_office priority "low", or a `Precedence: bulk` or `Precedence: list` header
(what newsletters and mailing lists carry). Everything else is transactional. Each lane
has its own queue on the broker (MAIL_QUEUE and MAIL_QUEUE.bulk); the workers serve both,
and transactional mail takes the sending rate first (pace.py).
"""

from django.conf import settings
from post_office.models import PRIORITY

from .models import Lane

BULK_PRECEDENCE = {"bulk", "list"}


def lane_of(priority, headers):
    """The lane of a mail, from its post_office priority and headers."""
    if priority == PRIORITY.low:
        return Lane.BULK
    precedence = next(
        (str(value) for name, value in (headers or {}).items() if name.lower() == "precedence"),
        "",
    )
    return Lane.BULK if precedence.strip().lower() in BULK_PRECEDENCE else Lane.TRANSACTIONAL


def queue_of(lane):
    """The broker's queue for a lane."""
    return settings.MAIL_BULK_QUEUE if lane == Lane.BULK else settings.MAIL_QUEUE
