import pytest
from django.db import connection
from django.db.utils import OperationalError

from config import celery_app

pytestmark = pytest.mark.django_db

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"


@pytest.fixture
def workers_answer(monkeypatch):
    """A worker answers the ping (the site's tests run without one)."""
    pong = [{"mail@test": {"ok": "pong"}}]
    monkeypatch.setattr(celery_app.control, "ping", lambda **kwargs: pong)


def test_all_reachable_is_200(client, workers_answer):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok", "workers": "ok"}


def test_an_unreachable_broker_is_503_naming_the_broker(client, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", UNREACHABLE_BROKER)

    response = client.get("/healthz")

    assert response.status_code == 503
    report = response.json()
    assert report["database"] == "ok"
    assert "Connection refused" in report["broker"]
    assert report["workers"] == "not checked: the broker is unreachable"


def test_no_worker_answering_is_503_naming_the_workers(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "database": "ok",
        "broker": "ok",
        "workers": "no worker answered within 2 s",
    }


def test_an_unreachable_database_is_503_naming_the_database(client, workers_answer, monkeypatch):
    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == "OperationalError: connection refused"


def test_health_is_answered_over_plain_http_in_production(client, workers_answer, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/login/").status_code == 301
