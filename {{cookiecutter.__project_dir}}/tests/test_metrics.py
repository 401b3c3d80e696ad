"""/metrics: what monitoring reads, from the rows every process shares."""

import smtplib
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.db.utils import OperationalError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from post_office import mail as post_office
from post_office.models import Email
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.project_slug }}.delivery.models import Delivery
from {{ cookiecutter.project_slug }}.metrics import collector, tally

pytestmark = pytest.mark.django_db

Heartbeat, Tally = (apps.get_model("metrics", name) for name in ("Heartbeat", "Tally"))
Event, Recipient, Suppression = (
    apps.get_model("recipients", name) for name in ("Event", "Recipient", "Suppression")
)

TOKEN = "a-token-for-monitoring"


@pytest.fixture(autouse=True)
def health_token(settings):
    settings.HEALTH_TOKEN = TOKEN


@pytest.fixture(autouse=True)
def nothing_counted_yet(monkeypatch):
    """Each test starts with no counts held in memory and no Tally rows known."""
    monkeypatch.setattr(tally, "_pending", tally.Counter())
    monkeypatch.setattr(tally, "_known", set())


@pytest.fixture
def send(committed):
    def send(to="ada@example.com", **kwargs):
        with committed():
            mail.EmailMessage("Hello", "Body", to=[to], **kwargs).send()
        return Email.objects.latest("pk")

    return send


def scrape(client):
    """{(metric, labels as a sorted tuple): value} of a scrape with the token, counts flushed."""
    tally.flush()
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    """A series' value, added up over the lanes."""
    found = [
        number
        for (sample, pairs), number in samples.items()
        if sample == name and {key: v for key, v in pairs if key != "lane"} == labels
    ]
    assert found, f"no {name} {labels}"
    return sum(found)


def test_anonymous_scrapes_are_asked_for_a_token_and_wrong_ones_refused(client):
    anonymous = client.get("/metrics")
    assert (anonymous.status_code, anonymous["WWW-Authenticate"]) == (401, "Bearer")
    assert b"mail_" not in anonymous.content
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    client.force_login(User.objects.create_user("reader"))
    assert client.get("/metrics").status_code == 403
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_staff_read_the_metrics(admin_client):
    assert admin_client.get("/metrics").status_code == 200


def test_a_database_that_does_not_answer_is_a_503_that_says_so(client, monkeypatch):
    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (response.status_code, response.content) == (503, b"the database did not answer\n")


def test_the_counts_are_those_the_database_holds(client, send, server, settings):
    send("sent1@example.com")
    send("sent2@example.com")
    server.errors.append(smtplib.SMTPDataError(554, b"Message rejected as spam"))
    send("refused@example.com")
    server.errors.append(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))
    send("retried@example.com")
    server.errors.append(smtplib.SMTPAuthenticationError(535, b"5.7.8 Credentials invalid"))
    send("setup@example.com")
    post_office.send(
        "later@example.com", message="Body", scheduled_time=timezone.now() + timedelta(days=1)
    )

    samples = scrape(client)

    assert value(samples, "mail_unsent", state="retrying", fault="passing") == 1
    assert value(samples, "mail_unsent", state="retrying", fault="setup") == 1
    assert value(samples, "mail_unsent", state="scheduled", fault="") == 1
    assert value(samples, "mail_unsent", state="queued", fault="") == 0
    unsent = sum(v for (name, _), v in samples.items() if name == "mail_unsent")
    assert unsent == Delivery.objects.exclude(state__in=("sent", "failed", "expired")).count()
    for state, mails in {"sent": 2, "failed": 1}.items():
        assert value(samples, "mail_finished_total", state=state) == mails
        assert Delivery.objects.filter(state=state).count() == mails
    for outcome, attempts in {"sent": 2, "refused": 1, "passing": 1, "setup": 1}.items():
        assert value(samples, "mail_attempts_total", outcome=outcome) == attempts, outcome
    # Every sent mail is in the histogram, each within a second of its send_mail().
    assert value(samples, "mail_time_to_server_seconds_count") == 2
    assert value(samples, "mail_time_to_server_seconds_bucket", le="1.0") == 2
    assert 0 <= value(samples, "mail_time_to_server_seconds_sum") < 2

    # The retried mail goes on its next attempt: one more sent, nothing counted twice.
    Delivery.objects.filter(state="retrying", fault="passing").update(due=timezone.now())
    call_command("send_queued_mail", stdout=open("/dev/null", "w"))  # noqa: SIM115
    samples = scrape(client)
    assert value(samples, "mail_finished_total", state="sent") == 3
    assert value(samples, "mail_attempts_total", outcome="sent") == 3
    assert value(samples, "mail_time_to_server_seconds_count") == 3
    assert value(samples, "mail_unsent", state="retrying", fault="passing") == 0


def test_the_oldest_waiting_mail_counts_from_its_send_mail_or_its_scheduled_time(client, send):
    now = timezone.now()
    assert value(scrape(client), "mail_oldest_waiting_seconds") == 0
    queued = post_office.send("ada@example.com", message="Body")
    Email.objects.filter(pk=queued.pk).update(created=now - timedelta(minutes=10))
    due = post_office.send(
        "bob@example.com", message="Body", scheduled_time=now + timedelta(days=1)
    )
    Email.objects.filter(pk=due.pk).update(
        created=now - timedelta(days=2), scheduled_time=now - timedelta(minutes=20)
    )
    Delivery.objects.filter(email_id=due.pk).update(due=now - timedelta(minutes=20))
    ahead = post_office.send(
        "cy@example.com", message="Body", scheduled_time=now + timedelta(days=1)
    )
    Email.objects.filter(pk=ahead.pk).update(created=now - timedelta(days=3))

    oldest = value(scrape(client), "mail_oldest_waiting_seconds")

    # The scheduled mail whose time came 20 minutes ago; not the one whose time is ahead.
    assert 20 * 60 <= oldest < 21 * 60


def test_delivery_events_are_counted_once_each_whichever_scrape_sees_them(client, send):
    email = send()
    ada = Recipient.objects.create(
        email=email, address="ada@example.com", provider="x", message_id="1"
    )
    settled = timezone.now() - collector.EVENTS_SETTLE - timedelta(seconds=1)
    for number, kind in enumerate(["delivered", "bounced", "bounced", "complained"]):
        event = Event.objects.create(recipient=ada, kind=kind, at=settled, key=str(number))
        Event.objects.filter(pk=event.pk).update(received=settled)
    just_in = Event.objects.create(recipient=ada, kind="unsubscribed", at=settled, key="new")

    first, second = scrape(client), scrape(client)

    for samples in (first, second):
        counts = {
            kind: value(samples, "mail_delivery_events_total", kind=kind)
            for kind in ("delivered", "bounced", "complained", "unsubscribed")
        }
        assert counts == {"delivered": 1, "bounced": 2, "complained": 1, "unsubscribed": 0}
    # Once settled, the event just received is counted too.
    Event.objects.filter(pk=just_in.pk).update(received=settled)
    assert value(scrape(client), "mail_delivery_events_total", kind="unsubscribed") == 1


def test_the_suppression_list_counts_the_addresses_not_lifted(client):
    Suppression.objects.create(address="a@example.com")
    Suppression.objects.create(address="b@example.com", scope="bulk")
    Suppression.objects.create(address="c@example.com", lifted=timezone.now())

    samples = scrape(client)

    assert value(samples, "mail_suppressed_addresses", scope="all") == 1
    assert value(samples, "mail_suppressed_addresses", scope="bulk") == 1


def test_a_worker_counts_as_consuming_while_its_heartbeat_is_recent(client, monkeypatch):
    assert value(scrape(client), "mail_workers_consuming") == 0
    monkeypatch.setattr(tally, "_worker", "mail@host-a")
    tally.beat()
    assert value(scrape(client), "mail_workers_consuming") == 1
    Heartbeat.objects.update(
        seen=timezone.now() - collector.HEARTBEAT_TIMEOUT - timedelta(seconds=1)
    )
    assert value(scrape(client), "mail_workers_consuming") == 0


def test_counts_not_written_stay_for_the_next_flush(monkeypatch):
    tally.add("mail_attempts", outcome="sent")
    with monkeypatch.context() as database_locked:
        database_locked.setattr(Tally.objects, "bulk_create", refuse_write)
        tally.flush()
    assert Tally.objects.count() == 0
    tally.add("mail_attempts", outcome="sent")
    tally.flush()
    assert Tally.objects.get(name="mail_attempts").value == 2


def refuse_write(*args, **kwargs):
    raise OperationalError("database is locked")


def test_a_scrape_costs_the_same_few_queries_however_many_mails(client, send):
    def queries():
        tally.flush()
        with CaptureQueriesContext(connection) as captured:
            scrape(client)
        return len(captured)

    send()
    few = queries()
    for number in range(30):
        send(f"{number}@example.com")
    assert queries() == few
    assert few <= 14  # 13 here: the mail, the counts, the pace and the quota


def test_the_rate_limit_and_quota_are_exported_only_where_they_are_set():
    standing = {"limit": 14, "rate": 13.5, "quota": 50_000, "quota_used": 1200, "paused": None}
    exported = {family.name: family.samples[0].value for family in collector.limits(standing)}
    assert exported == {
        "mail_rate_limit_per_second": 14,
        "mail_rate_in_use_per_second": 13.5,
        "mail_daily_quota": 50_000,
        "mail_daily_quota_used": 1200,
    }
    unset = {"limit": None, "rate": None, "quota": 0, "quota_used": 0}
    assert [family.name for family in collector.limits(unset)] == ["mail_daily_quota_used"]
