"""GET /healthz: can this site reach its database, its broker and a mail worker?

The answer is JSON with "ok" or the error for each, for example
{"database": "ok", "broker": "ok", "workers": "no worker answered within 1 s"},
with status 200 when all three are ok and 503 otherwise. Load balancers,
Docker's HEALTHCHECK and monitoring can all ask it.
"""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config import celery_app

OK = "ok"
# Seconds the broker gets to accept a connection, and the workers to answer.
TIMEOUT = 1


@require_safe
@never_cache
def healthz(request):
    report = {"database": check_database()}
    report["broker"], report["workers"] = check_broker_and_workers()
    healthy = all(value == OK for value in report.values())
    return JsonResponse(report, status=200 if healthy else 503)


def check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return describe(error)
    return OK


def check_broker_and_workers():
    with celery_app.connection_for_write(connect_timeout=TIMEOUT) as broker:
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
