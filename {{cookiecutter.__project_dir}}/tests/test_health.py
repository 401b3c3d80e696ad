import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.db.utils import OperationalError
from django.utils import timezone
from post_office import mail as post_office

from {{ cookiecutter.project_slug }}.delivery.models import Delivery

from config import celery_app, health

pytestmark = pytest.mark.django_db

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"
TOKEN = "a-token-for-monitoring"


@pytest.fixture(autouse=True)
def health_token(settings):
    settings.HEALTH_TOKEN = TOKEN


@pytest.fixture(autouse=True)
def no_check_made_yet(monkeypatch):
    monkeypatch.setattr(health, "LATEST", health.LatestCheck())


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


def test_a_wrong_token_in_any_characters_is_refused_not_a_server_error(client):
    for token in ("wrong", "ünïcödé-tökén", "\u2603" * 40):
        for url in ("/healthz", "/healthz/mail"):
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 403, (url, token)
            assert response.json() == {"error": "the Authorization header holds no valid token"}
    # A proxy's own Basic auth is no health token: the anonymous answer.
    basic = client.get("/healthz", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert (basic.status_code, basic.json()) == (200, {"database": "ok"})


class SilentBroker:
    """A TCP server that accepts connections and never answers, as a broker that hangs does;
    it counts the connections."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self):
        self.listener.close()
        for accepted in self.accepted:
            accepted.close()


@pytest.fixture
def silent_broker(monkeypatch):
    broker = SilentBroker()
    port = broker.listener.getsockname()[1]
    monkeypatch.setitem(celery_app.conf, "broker_url", f"amqp://guest:guest@127.0.0.1:{port}//")
    yield broker
    broker.close()


class ListeningServer(ThreadedWSGIServer):
    """Django's threaded server that queues 64 connections, as gunicorn queues more: the test
    server's 10 would drop some of 21 at once, and TCP tries again a second later."""

    request_queue_size = 64


@pytest.fixture
def site(transactional_db):
    """The site served over HTTP, a thread a request."""
    server = ListeningServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def get(url):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (the test's server)
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


def test_anonymous_mail_checks_at_once_open_one_broker_connection_and_healthz_keeps_answering(
    site, silent_broker
):
    assert get(f"{site}/healthz")[0] == 200  # the first request loads the site
    with ThreadPoolExecutor(max_workers=21) as pool:
        flood = [pool.submit(get, f"{site}/healthz/mail") for _ in range(20)]
        healthz = pool.submit(get, f"{site}/healthz").result()
        answers = [request.result() for request in flood]

    assert healthz[0] == 200
    assert healthz[1] < 1, f"/healthz took {healthz[1]:.2f} s during the flood"
    assert [status for status, _ in answers] == [503] * 20
    assert max(seconds for _, seconds in answers) < 1, "an anonymous caller waited on the broker"
    wait_for_a_check()
    assert "timed out" in health.LATEST.answered[0]
    assert len(silent_broker.accepted) == 1


def test_anonymous_callers_get_the_last_check_and_a_new_one_once_it_is_old(
    client, workers_answer, monkeypatch
):
    client.get("/healthz/mail")
    checked_at = wait_for_a_check()
    assert client.get("/healthz/mail").status_code == 200

    client.get("/healthz/mail")
    assert health.LATEST.at == checked_at, "checked again within FRESH_FOR"

    monkeypatch.setattr(health.LATEST, "at", checked_at - health.FRESH_FOR - 1)
    client.get("/healthz/mail")
    assert wait_for_a_check(after=checked_at) > checked_at


def wait_for_a_check(after=None):
    """When the background check ends (it gives the broker TIMEOUT seconds, the workers more)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        at = health.LATEST.at
        if at is not None and (after is None or at > after):
            return at
        time.sleep(0.01)
    raise AssertionError("no background check ended within 10 s")
