from datetime import timedelta

import pytest
from django.db import connection
from django.db.utils import OperationalError
from django.utils import timezone
from post_office import mail as post_office

from {{ cookiecutter.project_slug }}.delivery.models import Delivery

from config import celery_app

pytestmark = pytest.mark.django_db

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"
TOKEN = "a-token-for-monitoring"


@pytest.fixture(autouse=True)
def health_token(settings):
    settings.HEALTH_TOKEN = TOKEN


@pytest.fixture
def workers_answer(monkeypatch):
    """A worker answers the ping (the site's tests run without one)."""
    pong = [{"mail@test": {"ok": "pong"}}]
    monkeypatch.setattr(celery_app.control, "ping", lambda **kwargs: pong)


@pytest.fixture
def broker_down(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", UNREACHABLE_BROKER)


def as_monitoring(client, url):
    return client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})


def test_the_web_server_is_healthy_with_the_broker_and_the_workers_down(client, broker_down):
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"database": "ok"})


def test_an_unreachable_database_fails_both_and_only_monitoring_reads_why(client, monkeypatch):
    def refuse():
        raise OperationalError("connection to db.internal.example refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)

    anonymous = client.get("/healthz")
    assert (anonymous.status_code, anonymous.json()) == (503, {"database": "failing"})
    assert "db.internal" not in anonymous.content.decode()
    monitoring = as_monitoring(client, "/healthz")
    assert (
        monitoring.json()["database"]
        == "OperationalError: connection to db.internal.example refused"
    )
    assert client.get("/healthz/mail").status_code == 503


def test_mail_health_is_200_when_mail_goes_out(client, workers_answer):
    response = as_monitoring(client, "/healthz/mail")

    assert response.status_code == 200
    report = response.json()
    assert {
        name: report[name] for name in ("database", "broker", "workers", "waiting", "setup")
    } == {
        "database": "ok",
        "broker": "ok",
        "workers": "ok",
        "waiting": "ok",
        "setup": "ok",
    }
    assert report["failed_last_hour"] == 0
    assert report["mail_goes_to"]


def test_an_unreachable_broker_fails_mail_health_naming_it_only_to_monitoring(client, broker_down):
    anonymous = client.get("/healthz/mail")
    assert anonymous.status_code == 503
    assert anonymous.json()["broker"] == "failing"
    assert "127.0.0.1" not in anonymous.content.decode()

    report = as_monitoring(client, "/healthz/mail").json()
    assert "Connection refused" in report["broker"]
    assert report["workers"] == "not checked: the broker is unreachable"


def test_no_worker_answering_fails_mail_health(client):
    report = as_monitoring(client, "/healthz/mail").json()

    assert report["workers"] == "no worker answered within 2 s"


def test_a_fault_of_the_sites_setup_fails_mail_health_and_says_it(client, workers_answer):
    email = post_office.send("ada@example.com", subject="Hello", message="Body")
    Delivery.objects.filter(email_id=email.pk).update(
        state="retrying", fault="setup", reason="(535, b'Authentication credentials invalid')"
    )

    response = as_monitoring(client, "/healthz/mail")

    assert response.status_code == 503
    assert response.json()["setup"] == (
        "1 mails wait for the site's mail setup: (535, b'Authentication credentials invalid')"
    )


def test_a_mail_waiting_long_past_its_time_fails_mail_health(client, workers_answer, settings):
    email = post_office.send("ada@example.com", subject="Hello", message="Body")
    late = timezone.now() - settings.MAIL_HEALTH_MAX_DELAY - timedelta(minutes=1)
    Delivery.objects.filter(email_id=email.pk).update(due=late)

    response = as_monitoring(client, "/healthz/mail")

    assert response.status_code == 503
    assert response.json()["waiting"].startswith("a mail has waited 0:11:")


def test_staff_read_the_reasons_too(admin_client, broker_down):
    assert "Connection refused" in admin_client.get("/healthz/mail").json()["broker"]


def test_health_is_answered_over_plain_http_in_production(client, workers_answer, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz/mail").status_code == 200
    assert client.get("/admin/login/").status_code == 301
