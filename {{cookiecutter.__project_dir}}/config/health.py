"""Health checks: one for the web server, one for the mail (the mail's own checks are in
delivery/health.py; the broker's and the workers' here, beside the Celery app's config).

GET /healthz        the web server and its database; what load balancers and Docker's
                    HEALTHCHECK ask. The site serves pages and queues mail while the
                    broker or the workers are down, so they do not count here.
GET /healthz/mail   the broker, the workers, the oldest mail waiting past its time, a
                    fault of the site's mail setup, and the mail that failed in the last
                    hour; what monitoring asks. 503 means mail is not going out. "limits"
                    warns of mail held for the provider's limits (a pause, a spent
                    quota) without failing: that mail waits, it is not lost.

Both answer JSON, "ok" or "failing" for each check. The reasons (which may name internal
hosts) are given only to staff users and to requests with `Authorization: Bearer
<HEALTH_TOKEN>`, and only they make /healthz/mail ask the broker and the workers there and
then. Anyone else gets the answer of the last check, made in the background at most once
every FRESH_FOR seconds: no anonymous request waits on the broker or opens a connection to it.
"""

import functools
import threading
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from {{ cookiecutter.project_slug }}.delivery import health as mail

from config import celery_app

OK = mail.OK
# Seconds the broker gets to accept a connection, and the workers to answer.
TIMEOUT = 1
# Anonymous callers of /healthz/mail get the broker's and workers' answer at most this old
# (seconds), or the last one while a new check runs.
FRESH_FOR = 5


@require_safe
@never_cache
def healthz(request):
    if refusal := token_refused(request):
        return refusal
    return answer(request, {"database": check_database()})


@require_safe
@never_cache
def mail_health(request):
    if refusal := token_refused(request):
        return refusal
    checks = {"database": check_database()}
    trusted = may_read_reasons(request, database_answers=checks["database"] == OK)
    if trusted:
        checks["broker"], checks["workers"] = check_broker_and_workers()
    else:
        checks["broker"], checks["workers"] = LATEST.answer()
    if checks["database"] == OK:
        checks.update(mail.checks())
    database = checks["database"] == OK
    return answer(
        request,
        checks,
        trusted,
        failed_last_hour=mail.failed_last_hour() if database else None,
        limits=mail.limits_warning() if database else None,
        mail_goes_to=settings.MAIL_GOES_TO,
    )


def answer(request, checks, trusted=None, **details):
    """200 if every check is ok, else 503; the reasons only for who may read them."""
    healthy = all(value == OK for value in checks.values())
    if trusted is None:
        trusted = may_read_reasons(request, database_answers=checks["database"] == OK)
    if trusted:
        report = {**checks, **details}
    else:
        report = {name: OK if value == OK else "failing" for name, value in checks.items()}
    return JsonResponse(report, status=200 if healthy else 503)


def given_token(request):
    """The bearer token the request offers, if any (a proxy's Basic auth is not one)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def token_refused(request):
    """403 for a request that offers a token other than HEALTH_TOKEN (or the site has none)."""
    token, expected = given_token(request), settings.HEALTH_TOKEN
    # Compared as bytes: a token in any characters is just a wrong one.
    if token is None or (expected and constant_time_compare(token, expected)):
        return None
    return JsonResponse({"error": "the Authorization header holds no valid token"}, status=403)


def may_read_reasons(request, database_answers):
    if given_token(request) is not None:
        return True  # the right token: wrong ones are refused first
    # Sessions are in the database: ask it only if it answers.
    return database_answers and request.user.is_staff


def check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return describe(error)
    return OK


class LatestCheck:
    """The broker's and the workers' last answer, for anonymous callers. A caller who finds it
    older than FRESH_FOR starts a new check in a background thread, unless one runs already,
    and gets the last answer meanwhile."""

    NOT_YET = ("not checked yet", "not checked yet")

    def __init__(self):
        self.checking = threading.Lock()
        self.answered = self.NOT_YET
        self.at = None

    def answer(self):
        stale = self.at is None or time.monotonic() - self.at > FRESH_FOR
        if stale and self.checking.acquire(blocking=False):
            threading.Thread(target=self.check, name="mail-health", daemon=True).start()
        return self.answered

    def check(self):
        try:
            self.answered = check_broker_and_workers()
            self.at = time.monotonic()
        finally:
            self.checking.release()


LATEST = LatestCheck()


@functools.cache
def broker_pool(url):
    """Connections to the broker for the health checks, kept open between checks: two at most.
    https://docs.celeryq.dev/projects/kombu/en/stable/userguide/pools.html"""
    return celery_app.connection_for_write(url, connect_timeout=TIMEOUT).Pool(limit=2)


def check_broker_and_workers():
    try:
        acquired = broker_pool(celery_app.conf.broker_url).acquire(block=True, timeout=TIMEOUT)
    except Exception:
        return "not checked: two checks are waiting for the broker already", "not checked"
    with acquired as broker:
        try:
            broker.ensure_connection(max_retries=0)
        except Exception as error:
            return describe(error), "not checked: the broker is unreachable"
        # A transport that polls for messages (kombu's filesystem transport
        # looks once a second) needs that much longer for a worker's answer.
        wait = TIMEOUT + (getattr(broker.transport, "polling_interval", None) or 0)
        try:
            answers = celery_app.control.ping(timeout=wait, limit=1, connection=broker)
        except Exception as error:
            return OK, describe(error)
    return OK, OK if answers else f"no worker answered within {wait:g} s"


def describe(error):
    return f"{type(error).__name__}: {error}"
