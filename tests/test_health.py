"""/healthz of a baked site, served by gunicorn, with a real worker on a real broker."""

import json
import urllib.error
import urllib.request

import pytest
from catcher import free_port
from conftest import wait_for

ALL_OK = {"database": "ok", "broker": "ok", "workers": "ok"}


def health(url):
    """(status, report) from /healthz, or None while the server is not answering yet."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return None


@pytest.mark.parametrize("broker", ["rabbitmq", "filesystem"])
def test_health_says_when_the_worker_is_gone(site, broker, request):
    if broker == "rabbitmq":
        site.env = {"CELERY_BROKER_URL": request.getfixturevalue("rabbitmq")}
    worker = site.start("deploy/bin/worker", log="worker.log")
    port = free_port()
    site.start("deploy/bin/web", env={"WEB_BIND": f"127.0.0.1:{port}"}, log="web.log")
    url = f"http://127.0.0.1:{port}/healthz"

    wait_for(lambda: health(url) == (200, ALL_OK), 60, "/healthz to answer 200, all ok")

    site.stop(worker)
    status, report = wait_for(lambda: health(url), 30, "/healthz to answer")
    assert status == 503
    assert report["database"] == report["broker"] == "ok"
    assert report["workers"].startswith("no worker answered within")
