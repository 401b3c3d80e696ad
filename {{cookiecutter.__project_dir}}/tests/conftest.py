import pytest
from django.conf import settings
from django.core import mail

from {{ cookiecutter.project_slug }}.delivery import (
    connections,
    handoff,
)

from config import celery_app
from config import settings as site_settings
from tests.mail_server import MailServer
from tests.scripted_server import OtherServer, ScriptedServer


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """A test database in a file, so the hand-off thread's own connection works as in the site."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["TEST"]["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True, scope="session")
def in_memory_broker():
    """Nothing a test publishes reaches the broker a worker of this machine reads.

    Celery prefers CELERY_BROKER_URL from the environment (or from .env, which
    fills the environment in) to its settings, so that goes for the tests' run.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CELERY_BROKER_URL", raising=False)
        celery_app.conf.update(broker_url="memory://", broker_transport_options={})
        yield


@pytest.fixture(autouse=True)
def mail_path(settings, monkeypatch, request):
    """The site's own mail path, with Celery tasks run in place and a scripted in-memory
    mail server instead of the real one (and "other", a second server mail.send may name)."""
    settings.MAILERS = {
        **site_settings.MAILERS,
        "transport": {"BACKEND": "tests.scripted_server.ScriptedServer"},
        "other": {"BACKEND": "tests.scripted_server.OtherServer"},
    }
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    if not request.node.get_closest_marker("background_handoff"):
        # Hand off in the test's own thread, which sees the test's transaction.
        monkeypatch.setattr(handoff, "_submit", handoff.hand_off_due)
    monkeypatch.setattr(handoff, "_broker_paused_until", 0.0)
    mail.outbox = []
    yield
    ScriptedServer.errors.clear()
    ScriptedServer.refusals.clear()
    OtherServer.received.clear()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """committed(): a block whose transaction commits; what runs after a commit runs at its end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def mail_server(mail_path, settings):
    """The mail server your tests send to: what reached it, through the site's whole mail path.

    A mail sent in the test (send_mail(), post_office's mail.send(), a view or a command that
    sends) goes the way it goes in production: its post_office row, the hand-off once the
    transaction commits, the worker's code (Celery runs the task in the test), the site's SMTP
    mailer, and a real SMTP server on 127.0.0.1 that keeps what it received:
    `mail_server.messages` (parsed: message["To"], message.get_body(("plain",)).get_content()),
    `mail_server.raw` (the bytes on the wire) and `mail_server.envelopes` (rcpt_tos).

    The mail leaves when the transaction that sent it commits: in a test marked django_db,
    send inside `with committed():`. See test_welcome.py.
    """
    with MailServer() as server:
        settings.MAILERS = {**settings.MAILERS, "transport": server.mailer}
        yield server
        # The worker keeps its connections open (delivery/connections.py): close them here.
        connections.close_idle("transport")


@pytest.fixture
def server():
    """The mail server: append exceptions to `server.errors` to make it fail, refusals to
    `server.refusals` to make it refuse some recipients."""
    return ScriptedServer


@pytest.fixture(autouse=True)
def uncollected_static_files(settings):
    """Pages render without `collectstatic`, as in development."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def plain_http(settings):
    """The test client speaks plain HTTP, in production settings too (as in CI, without .env)."""
    settings.SECURE_SSL_REDIRECT = False
