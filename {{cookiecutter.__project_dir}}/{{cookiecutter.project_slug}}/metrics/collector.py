"""What one scrape of /metrics reads: a few indexed queries over the site's own rows, whatever
process answers. Counts that only grow are Tally rows (tally.py); what stands now is counted
where an index makes it cheap (the mail not sent yet, not every mail ever sent).
"""

import itertools
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..delivery import pace
from ..delivery.models import Delivery, Fault, State
from ..recipients.models import Event, Suppression
from .models import Heartbeat, Tally
from .tally import BUCKETS, FLUSH_EVERY, PER_LANE, format_bound

UNSENT = (
    State.QUEUED,
    State.SCHEDULED,
    State.HANDED_OFF,
    State.SENDING,
    State.RETRYING,
    State.HELD,
)
# Waiting for a worker, the mail server or the provider's limits; a scheduled mail only once
# its time has come.
WAITING = (State.QUEUED, State.HANDED_OFF, State.SENDING, State.RETRYING, State.HELD)
# A worker that has not beaten for this long is taken for gone.
HEARTBEAT_TIMEOUT = timedelta(seconds=3 * FLUSH_EVERY)
# A delivery event is counted once it is this old: the webhook's transaction has committed.
EVENTS_SETTLE = timedelta(seconds=5)
EVENTS_COUNTED_UP_TO = "mail_delivery_events_counted_up_to"
# What an attempt ends in: sent, or the fault that kept the mail from being sent.
OUTCOMES = ("sent", *(fault.value for fault in Fault if fault.value))


class MailCollector:
    """prometheus_client's custom collector: every family read afresh on each scrape."""

    def collect(self):
        now = timezone.now()
        yield unsent()
        yield oldest_waiting(now)
        count_new_events(now)
        yield from tallied(Tally.objects.exclude(name=EVENTS_COUNTED_UP_TO))
        yield suppressed()
        yield workers_consuming(now)
        yield from limits(pace.standing())


def unsent():
    family = GaugeMetricFamily(
        "mail_unsent",
        "Mails not sent yet, by state; retrying ones by the fault of their last attempt.",
        labels=["state", "fault", *PER_LANE],
    )
    # By state from the index on (state, due) alone; the fault read for retrying mails only.
    by_state = ("state", *PER_LANE)
    states = Delivery.objects.filter(state__in=UNSENT).exclude(state=State.RETRYING)
    retrying = Delivery.objects.filter(state=State.RETRYING)
    counted = {}
    for rows, labels in ((states, by_state), (retrying, ("state", "fault", *PER_LANE))):
        for row in rows.values(*labels).annotate(mails=Count("*")).order_by():
            series = (row["state"], row.get("fault", ""), *(row[name] for name in PER_LANE))
            counted[series] = row["mails"]
    # Every state (and fault of a retrying mail), also at 0, so that graphs do not break off.
    lanes = list(itertools.product(*map(lane_values, PER_LANE)))
    for state, lane in itertools.product(UNSENT, lanes):
        faults = Fault if state == State.RETRYING else [Fault.NONE]
        for fault in faults:
            counted.setdefault((state.value, fault.value, *lane), 0)
    for series, mails in sorted(counted.items()):
        family.add_metric(series, mails)
    return family


def lane_values(field):
    return [value for value, _ in Delivery._meta.get_field(field).choices or [("", "")]]


def oldest_waiting(now):
    family = GaugeMetricFamily(
        "mail_oldest_waiting_seconds",
        "How long the oldest mail not sent yet has waited since send_mail() or its schedule.",
        labels=list(PER_LANE),
    )
    waiting = Q(state__in=WAITING) | Q(state=State.SCHEDULED, due__lte=now)
    since = Min(Coalesce("email__scheduled_time", "email__created"))
    mails = Delivery.objects.filter(waiting)
    rows = mails.values(*PER_LANE).annotate(since=since).order_by()
    oldest = {tuple(row[name] for name in PER_LANE): row["since"] for row in rows}
    for lane in itertools.product(*map(lane_values, PER_LANE)):
        oldest.setdefault(lane, None)  # nothing waits: 0
    for series, since_moment in sorted(oldest.items()):
        age = (now - since_moment).total_seconds() if since_moment else 0
        family.add_metric(series, max(age, 0))
    return family


def count_new_events(now):
    """Add the delivery events received since the last scrape to their Tally rows, each once:
    a scrape holds the row that says how far they were counted."""
    with transaction.atomic():
        Tally.objects.bulk_create([Tally(name=EVENTS_COUNTED_UP_TO)], ignore_conflicts=True)
        mark = Tally.objects.select_for_update().get(name=EVENTS_COUNTED_UP_TO, labels="")
        new = Event.objects.filter(pk__gt=int(mark.value))
        last = new.filter(received__lt=now - EVENTS_SETTLE).aggregate(last=Max("pk"))["last"]
        if last is None:
            return
        kinds = new.filter(pk__lte=last).values("kind").annotate(events=Count("pk")).order_by()
        for row in kinds:
            add_to_tally("mail_delivery_events", f"kind={row['kind']}", row["events"])
        mark.value = last
        mark.save(update_fields=["value"])


def add_to_tally(name, labels, value):
    Tally.objects.bulk_create([Tally(name=name, labels=labels)], ignore_conflicts=True)
    Tally.objects.filter(name=name, labels=labels).update(value=F("value") + value)


def tallied(rows):
    """The counters and the histogram, from the Tally rows."""
    series = {}  # name: {labels as a tuple of pairs: value}
    for row in rows:
        pairs = tuple(tuple(pair.split("=", 1)) for pair in row.labels.split(",") if pair)
        series.setdefault(row.name, {})[pairs] = row.value
    lanes = [("lane", value) for value in lane_values("lane")]
    attempts = series.get("mail_attempts", {})
    for outcome, lane in itertools.product(OUTCOMES, lanes):  # also at 0: alerts divide by them
        attempts.setdefault(tuple(sorted([("outcome", outcome), lane])), 0)
    yield counter("mail_attempts", "Attempts to send, by what they ended in.", attempts)
    finished = series.get("mail_finished", {})
    for state, lane in itertools.product((State.SENT, State.FAILED), lanes):
        finished.setdefault(tuple(sorted([("state", state.value), lane])), 0)
    yield counter("mail_finished", "Mails a worker sent, or failed for good.", finished)
    events = series.get("mail_delivery_events", {})
    for kind in ("delivered", "bounced", "complained", "unsubscribed"):
        events.setdefault((("kind", kind),), 0)
    yield counter("mail_delivery_events", "Delivery events the email services posted.", events)
    yield histogram(
        series.get("mail_time_to_server_seconds_bucket", {}),
        series.get("mail_time_to_server_seconds_sum", {}),
    )


def counter(name, documentation, values):
    names = sorted({label for pairs in values for label, _ in pairs})
    family = CounterMetricFamily(name, documentation, labels=names)
    for pairs, value in sorted(values.items()):
        labels = dict(pairs)
        family.add_metric([labels.get(label, "") for label in names], value)
    return family


def histogram(buckets, sums):
    family = HistogramMetricFamily(
        "mail_time_to_server_seconds",
        "Time from send_mail() (or the scheduled time) to the mail server's acceptance.",
        labels=list(PER_LANE),
    )
    by_series = {}
    for pairs, count in buckets.items():
        labels = dict(pairs)
        bound = labels.pop("le")
        by_series.setdefault(tuple(labels.get(name, "") for name in PER_LANE), {})[bound] = count
    for pairs in sums:
        by_series.setdefault(tuple(dict(pairs).get(name, "") for name in PER_LANE), {})
    for series, counts in sorted(by_series.items()):
        cumulative, running = [], 0
        for bound in map(format_bound, BUCKETS):
            running += counts.get(bound, 0)
            cumulative.append((bound, running))
        total = sums.get(tuple(zip(PER_LANE, series, strict=True)), 0)
        family.add_metric(list(series), cumulative, total)
    return family


def suppressed():
    family = GaugeMetricFamily(
        "mail_suppressed_addresses",
        "Addresses the site does not mail (all mail, or bulk mail only).",
        labels=["scope"],
    )
    active = Suppression.objects.filter(lifted=None).values("scope").annotate(n=Count("pk"))
    counted = {row["scope"]: row["n"] for row in active.order_by()}
    for scope in ("all", "bulk"):
        family.add_metric([scope], counted.get(scope, 0))
    return family


def workers_consuming(now):
    beating = Heartbeat.objects.filter(seen__gte=now - HEARTBEAT_TIMEOUT).count()
    return GaugeMetricFamily(
        "mail_workers_consuming",
        f"Workers that consume mail: a heartbeat in the last {HEARTBEAT_TIMEOUT.seconds} s.",
        value=beating,
    )


def limits(standing):
    """The rate limit and the daily quota in force, and how much of each is used, from
    delivery.pace.standing(); each only where it is set."""
    for name, key, documentation in (
        ("mail_rate_limit_per_second", "limit", "Mails a second the site may send."),
        ("mail_rate_in_use_per_second", "rate", "Mails a second the site paces itself to now."),
        ("mail_daily_quota", "quota", "Mails the provider takes in 24 hours (MAIL_DAILY_QUOTA)."),
        ("mail_daily_quota_used", "quota_used", "Mails sent in the last 24 hours."),
    ):
        value = standing.get(key)
        if value is None or (key == "quota" and not value):  # a quota of 0: none
            continue
        yield GaugeMetricFamily(name, documentation, value=value)
