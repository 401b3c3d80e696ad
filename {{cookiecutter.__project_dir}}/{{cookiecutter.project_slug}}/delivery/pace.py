"""The sending pace every worker thread, process and host of the site keeps together.

One `Pace` row per mailer in the database holds the rate now allowed and the next free
slot. A process leases a few slots at a time (half a second's worth, one write per
lease), spaced (1 + margin) / rate apart, and its threads each wait for one before they
send: a token bucket whose tokens are handed out in order. Transactional mail may lease
slots up to MAX_WAIT ahead; bulk mail only BULK_HORIZON ahead, so a transactional mail
never waits behind the bulk mail's slots for longer than that.

The margin keeps every second at the server within the rate although mails reach it a
little after their slots, some later than others: a mail may arrive up to `margin` seconds
later than the one a second after it. It is MARGIN, or on a busy machine the spread the
processes measure (how far apart their last second's mails were answered after their
slots), which the row keeps as `jitter`, the widest lately reported, easing by JITTER_EASES
a second; at most MAX_MARGIN, which is also where it starts after an idle second. A thread
woken more than half the margin after its slot (its process stalled) takes a later one.

Throttling answers, for a site told no limit (no rate yet): the first one pauses every
worker for a second (the provider's count starts again) while each process adds to the
rate DECREASE x the mails it had accepted in the second before the answer, as it hears of
the pause: the whole site's count, which is what the provider measured, not the answering
process's share. Once the rate is set, every worker's slots come from it, so it is the
whole site's rate: a throttling answer cuts it to DECREASE x itself (at most once every
COOLDOWN), and a second later, while mail waits for slots, it grows back by INCREASE a
second, up to MAIL_RATE_LIMIT (additive increase, multiplicative decrease); one cut from
MAIL_RATE_LIMIT, it grows back by INCREASE_TOLD, within a second or two.
Retry-After and quota answers pause the mailer instead, for as long as they say.
MAIL_DAILY_QUOTA counts mails in hourly `Usage` rows over a rolling 24 hours; bulk mail
stops MAIL_DAILY_QUOTA_RESERVE short of it.
"""

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum

from .models import Lane, Pace, Usage
from config.mail import SERVER_MAILER

MARGIN = 0.03
MAX_MARGIN = 0.1
JITTER_EASES = 0.01
LEASE_SECONDS = 0.5
BULK_HORIZON = 0.5
MAX_WAIT = 5.0
COOLDOWN = 0.5
DECREASE = 0.9
INCREASE = 0.02
INCREASE_TOLD = 0.1
MIN_RATE = 0.1
LEARNING = "learning the provider's rate"
# Without a rate, a lease lets this many mails go (it counts them against the quota).
FREE_LEASE = 50
DAY = timedelta(hours=24)


@dataclass
class Held:
    """No slot within MAX_WAIT: the mail goes back in line until `until` (epoch seconds)."""

    until: float
    why: str


@dataclass
class _Local:
    """This process's leased slots of one mailer, shared by its threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    leasing: threading.Lock = field(default_factory=threading.Lock)  # one lease at a time
    slots: list = field(default_factory=list)  # epoch seconds, ascending
    free_until: float = 0.0  # without a rate: mails may go until then...
    free_left: float = 0.0  # ...this many of them
    accepted: int = 0  # accepted since the last report to the row
    recent: deque = field(default_factory=deque)  # when this process's last 2 seconds' were
    late: deque = field(default_factory=deque)  # (when, seconds after its slot): the last second
    learned: float = 0.0  # the throttling answer whose second this process has counted
    unused: int = 0  # leased and counted against the quota, never used
    waiting: int = 0  # threads waiting for a slot
    tolerance: float = math.inf  # how late after its slot a thread may still send


_slot = threading.local()  # the slot of the mail this thread sends
_locals = {}
_locals_lock = threading.Lock()


def _local(mailer):
    with _locals_lock:
        return _locals.setdefault(mailer, _Local())


def limit_of(mailer):
    """The rate limit set for a mailer: MAIL_RATE_LIMIT for the site's transport,
    MAIL_RATE_LIMITS for the mailers added to MAILERS."""
    if mailer == SERVER_MAILER:
        return settings.MAIL_RATE_LIMIT
    return settings.MAIL_RATE_LIMITS.get(mailer)


def margin(jitter):
    """Seconds a second the slots leave free (see the module's docstring)."""
    return min(MAX_MARGIN, max(MARGIN, jitter))


def spacing(rate, jitter=0.0):
    return (1 + margin(jitter)) / rate


def acquire(mailer, lane):
    """Wait for a slot to send one mail; None once it is time, or Held."""
    local = _local(mailer)
    deadline = time.time() + MAX_WAIT
    with local.lock:
        local.waiting += 1
    late_once = False
    try:
        while True:
            with local.leasing:  # the threads that waited meanwhile find the new slots
                with local.lock:
                    slot = _take(local, lane, time.time())
                if slot is None:  # the first of the slots leased, or Held
                    slot = _lease(mailer, lane, local, time.time())
            if not isinstance(slot, Held):
                time.sleep(max(0.0, slot - time.time()))
                if time.time() - slot > local.tolerance and not late_once:
                    # Woken too late (a stalled process): sent now, it would bunch with the
                    # mails of the next slots. It takes a later slot instead, once.
                    late_once = True
                    with local.lock:
                        local.unused += 1
                    continue
                _slot.at = slot
                return None
            if slot.until > deadline:
                return slot
            time.sleep(max(0.01, slot.until - time.time()))
    finally:
        with local.lock:
            local.waiting -= 1


def _take(local, lane, now):
    """The earliest of this process's slots the lane may use, taken; or None."""
    if local.free_left >= 1:
        if local.free_until > now:
            local.free_left -= 1
            return now
        local.unused += local.free_left if math.isfinite(local.free_left) else 0
        local.free_left = 0
    while local.slots and local.slots[0] < now:
        local.slots.pop(0)
        local.unused += 1
    reach = BULK_HORIZON if lane == Lane.BULK else MAX_WAIT
    if local.slots and local.slots[0] <= now + reach:
        return local.slots.pop(0)
    return None


def _lease(mailer, lane, local, now):
    """Lease slots for this process from the mailer's row: the first, for the caller (the
    others go to this process's threads), or Held."""
    with local.lock:
        wanted = max(1, local.waiting)
        accepted, local.accepted = local.accepted, 0
        unused, local.unused = local.unused, 0
        spread = _spread(local, now)
    with transaction.atomic():
        row = _row(mailer)
        now = max(now, time.time())  # no slot before the lease: the row may have been busy
        _report(row, accepted, now)
        _widen(row, spread, now)
        _learn(row, local, now)
        _give_back(mailer, unused, now)
        if row.paused_until > now:
            row.save()
            return Held(row.paused_until, row.pause_reason or "paused")
        left = _quota_left(mailer, lane, now)
        if left is not None and left <= 0:
            row.save()
            return Held(_quota_frees_at(mailer, now), "the daily quota is spent")
        if row.rate is None:  # no limit: counted only against the quota
            count = float("inf") if left is None else min(FREE_LEASE, left)
            _count(mailer, count if left is not None else 0, now)
            row.save()
            with local.lock:
                local.free_until, local.free_left = now + LEASE_SECONDS, count - 1
                local.tolerance = math.inf
            return now
        step = spacing(row.rate, row.jitter)
        start = max(row.next_free, now)
        local.tolerance = margin(row.jitter) / 2
        reach = BULK_HORIZON if lane == Lane.BULK else MAX_WAIT
        if start > now + reach:
            row.save()
            return Held(start - reach, "waiting for the rate limit")
        if start > now:  # mail waits for slots: the provider is used to the full
            _speed_up(row, mailer, now)
            step = spacing(row.rate, row.jitter)
        count = min(wanted, max(1, round(row.rate * LEASE_SECONDS)))
        if left is not None:
            count = min(count, left)
        slots = [start + i * step for i in range(count)]
        row.next_free = start + count * step
        _count(mailer, count if left is not None else 0, now)
        row.save()
    with local.lock:
        local.slots = sorted(local.slots + slots[1:])
    return slots[0]


def _row(mailer):
    Pace.objects.get_or_create(mailer=mailer, defaults={"rate": limit_of(mailer)})
    row = Pace.objects.select_for_update().get(mailer=mailer)
    limit = limit_of(mailer)
    if limit is not None and (row.rate is None or row.rate > limit):
        row.rate = limit  # MAIL_RATE_LIMIT was set or lowered
    return row


def _report(row, accepted, now):
    """Add this process's accepted mails to the row's count, the accepted rate measured
    over windows of about a second."""
    if now - row.counted_since > 5:  # nothing counted for a while: a new window
        row.counted_since, row.accepted, row.accepted_rate = now - LEASE_SECONDS, 0, 0.0
    row.accepted += accepted
    if now - row.counted_since >= 1:
        row.accepted_rate = row.accepted / (now - row.counted_since)
        row.counted_since, row.accepted = now, 0


def _spread(local, now):
    """How far apart this process's last second's mails reached the server after their slots."""
    lateness = [late for when, late in local.late if when >= now - 1]
    return max(lateness) - min(lateness) if len(lateness) > 1 else 0.0


def _widen(row, spread, now):
    """The row keeps the widest spread lately reported, easing by JITTER_EASES a second. After
    an idle second it starts from MAX_MARGIN: how late the first mails land is not known yet
    (connections, caches and the machine's load are new)."""
    if now - row.next_free > 1:
        row.jitter, row.jitter_at = MAX_MARGIN, now
    eased = row.jitter - JITTER_EASES * max(0.0, now - row.jitter_at)
    row.jitter, row.jitter_at = max(spread, eased, 0.0), now


def _slow_down(row, now):
    """Learn the rate (a site told no limit), or cut it at most once every COOLDOWN."""
    if row.rate is None:
        row.rate, row.cut_at = MIN_RATE, now  # each process adds its share (_learn)
        row.paused_until, row.pause_reason = now + 1.0, LEARNING
    elif not _learning(row, now) and now - row.cut_at >= COOLDOWN:
        row.rate = max(MIN_RATE, DECREASE * row.rate)
        row.cut_at = row.raised_at = now
        row.next_free = max(row.next_free, now + spacing(row.rate, row.jitter))


def _learning(row, now):
    return row.pause_reason == LEARNING and row.paused_until > now


def _learn(row, local, now):
    """While the site learns its rate, add this process's share (once): DECREASE x the mails
    it had accepted in the second before the throttling answer."""
    if _learning(row, now) and local.learned != row.cut_at:
        with local.lock:
            count = sum(row.cut_at - 1 <= moment <= row.cut_at for moment in local.recent)
            local.learned = row.cut_at
        row.rate += DECREASE * count


def _speed_up(row, mailer, now):
    if now - row.cut_at < 1:
        return
    limit = limit_of(mailer)
    # One cut from a limit the site was told (the provider's own figure): mails bunched on a
    # busy moment, back to it within a second or two. Cut again meanwhile: the machine stays
    # busy, so the rate grows back slowly, as a learned one does.
    once = limit is not None and row.rate >= DECREASE * limit * 0.999
    increase = INCREASE_TOLD if once else INCREASE
    elapsed = min(1.0, now - row.raised_at)
    rate = row.rate * (1 + increase * elapsed)
    row.rate = min(rate, limit) if limit is not None else rate
    row.raised_at = now


def accepted(mailer):
    """The provider accepted a mail (counted locally, reported with the next lease)."""
    local = _local(mailer)
    now = time.time()
    slot, _slot.at = getattr(_slot, "at", None), None
    with local.lock:
        local.accepted += 1
        local.recent.append(now)
        while local.recent[0] < now - 2:
            local.recent.popleft()
        if slot is not None:
            local.late.append((now, now - slot))
        while local.late and local.late[0][0] < now - 1:
            local.late.popleft()


def throttled(mailer, verdict):
    """The provider answered with throttling (answers.Verdict): slow every worker down."""
    local = _local(mailer)
    now = time.time()
    with local.lock:
        accepted, local.accepted = local.accepted, 0
        free = local.free_left if math.isfinite(local.free_left) else 0
        unused = local.unused + free
        # A lease without a rate ends; leased slots keep their times, spaced at the rate then.
        local.free_until, local.free_left, local.unused = 0.0, 0.0, 0
    with transaction.atomic():
        row = _row(mailer)
        _report(row, accepted, now)
        _give_back(mailer, int(unused), now)
        hour = now - now % 3600
        row.throttled = row.throttled + 1 if row.throttled_hour == hour else 1
        row.throttled_hour = hour
        if verdict.pause:  # the provider said how long
            row.paused_until = max(row.paused_until, now + verdict.pause)
            row.pause_reason = f"the provider asked for a pause ({verdict.kind})"
        elif verdict.kind == "rate":
            _slow_down(row, now)
        _learn(row, local, now)
        row.save()
        if row.paused_until > now:
            return row.paused_until
        return now + spacing(row.rate or 1, row.jitter)


def _hour(now):
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _count(mailer, count, now):
    """Count leased mails against the daily quota, in the hour they are leased."""
    if count and settings.MAIL_DAILY_QUOTA is not None:
        usage, _ = Usage.objects.get_or_create(mailer=mailer, hour=_hour(now))
        Usage.objects.filter(pk=usage.pk).update(sent=F("sent") + count)


def _give_back(mailer, unused, now):
    """Leased mails never sent no longer count against the quota."""
    if unused and settings.MAIL_DAILY_QUOTA is not None:
        latest = Usage.objects.filter(mailer=mailer).order_by("-hour").first()
        if latest is not None:
            latest.sent = max(0, latest.sent - unused)
            latest.save(update_fields=["sent"])


def used_today(mailer, now=None):
    """Mails of a mailer counted in the last 24 hours."""
    since = _hour(now or time.time()) - DAY + timedelta(hours=1)
    used = Usage.objects.filter(mailer=mailer, hour__gte=since).aggregate(Sum("sent"))
    return used["sent__sum"] or 0


def _quota_left(mailer, lane, now):
    """Mails the lane may still send in the rolling 24 hours; None without a quota."""
    quota = settings.MAIL_DAILY_QUOTA
    if quota is None:
        return None
    if lane == Lane.BULK:
        quota = int(quota * (1 - settings.MAIL_DAILY_QUOTA_RESERVE))
    return quota - used_today(mailer, now)


def _quota_frees_at(mailer, now):
    """When the oldest hour still counted leaves the 24 hours."""
    since = _hour(now) - DAY + timedelta(hours=1)
    oldest = (
        Usage.objects.filter(mailer=mailer, hour__gte=since, sent__gt=0).order_by("hour").first()
    )
    return (oldest.hour + DAY).timestamp() if oldest else now + 3600


def standing(mailer=SERVER_MAILER):
    """Where the mailer stands against its limits, for the admin, health and metrics."""
    row = Pace.objects.filter(mailer=mailer).first()
    now = time.time()
    paused = row.paused_until if row and row.paused_until > now else None
    hour = now - now % 3600
    return {
        "limit": limit_of(mailer),
        "rate": row.rate if row else limit_of(mailer),
        "accepted_rate": row.accepted_rate if row and now - row.counted_since < 10 else 0.0,
        "throttled_this_hour": row.throttled if row and row.throttled_hour == hour else 0,
        "quota": settings.MAIL_DAILY_QUOTA,
        "quota_used": used_today(mailer, now),
        "paused_until": datetime.fromtimestamp(paused, UTC) if paused else None,
        "pause_reason": row.pause_reason if paused else "",
    }
