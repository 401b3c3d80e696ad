"""The health checks of a baked site, served by gunicorn, with a real worker on a real broker."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from harness.baked_site import env_file, get_json
from harness.needs import service_answers
from harness.processes import wait_for
from harness.smtp_catcher import free_port
from harness.tcp_proxy import TcpProxy

MAIL_OK = {"database": "ok", "broker": "ok", "workers": "ok", "waiting": "ok", "setup": "ok"}


def start_web(site, **env):
    port = free_port()
    site.start("deploy/bin/web", env={"WEB_BIND": f"127.0.0.1:{port}", **env}, log="web.log")
    return f"http://127.0.0.1:{port}"


# The machine's RabbitMQ is asked for inside the test: its tiers are marked here.
@pytest.mark.parametrize(
    "broker", [pytest.param("rabbitmq", marks=[pytest.mark.services, pytest.mark.root]), "filesystem"]
)
def test_mail_health_says_when_the_worker_is_gone_and_the_site_stays_healthy(site, broker, request):
    if broker == "rabbitmq":
        site.env = {"CELERY_BROKER_URL": request.getfixturevalue("rabbitmq")}
    token = env_file(site)["HEALTH_TOKEN"]
    worker = site.start("deploy/bin/worker", log="worker.log")
    web = start_web(site)

    def mail_checks():
        answer = get_json(f"{web}/healthz/mail", token)
        return answer and (answer[0], {name: answer[1][name] for name in MAIL_OK})

    wait_for(lambda: mail_checks() == (200, MAIL_OK), 60, "/healthz/mail to answer 200, all ok")

    site.stop(worker)
    status, checks = mail_checks()
    assert status == 503
    assert checks["workers"].startswith("no worker answered within")
    assert get_json(f"{web}/healthz") == (200, {"database": "ok"})
    assert get_json(f"{web}/healthz/mail")[1]["workers"] == "failing", "reasons only with the token"


def test_a_database_that_does_not_answer_fails_health_in_seconds(site, postgres):
    with TcpProxy(5432) as database:
        database.hang()
        web = start_web(site, DATABASE_URL=postgres.replace(":5432/", f":{database.port}/"))
        port = int(web.rsplit(":", 1)[1])
        wait_for(lambda: service_answers(port), 30, "gunicorn listening")

        answers, seconds = [], []
        for check in ("/healthz", "/healthz/mail"):
            started = time.monotonic()
            answers.append(get_json(f"{web}{check}"))
            seconds.append(time.monotonic() - started)

    assert [status for status, _ in answers] == [503, 503]
    assert answers[0][1] == {"database": "failing"}
    assert max(seconds) < 10, f"the health checks took {seconds} s"


class SilentBroker:
    """Accepts TCP connections and never says a word, as a broker that hangs; counts them."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
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


def timed(url):
    started = time.monotonic()
    answer = get_json(url)
    return answer and answer[0], time.monotonic() - started


def test_a_flood_of_anonymous_mail_checks_opens_two_broker_connections_and_healthz_keeps_answering(site):
    """gunicorn's two processes, a broker that never answers, 20 anonymous /healthz/mail at
    once: each process checks the broker once, in the background, and /healthz (Docker's
    HEALTHCHECK gives it 5 s) answers at once."""
    broker = SilentBroker()
    try:
        web = start_web(site, CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{broker.port}//")
        wait_for(lambda: get_json(f"{web}/healthz"), 30, "gunicorn answering /healthz")

        with ThreadPoolExecutor(max_workers=21) as pool:
            flood = [pool.submit(timed, f"{web}/healthz/mail") for _ in range(20)]
            healthz = pool.submit(timed, f"{web}/healthz").result()
            answers = [request.result() for request in flood]
        wait_for(lambda: broker.accepted, 5, "a background check to reach the broker")
        # A check gives the broker 1 s; one more than the design allows would show by then.
        time.sleep(2)
    finally:
        broker.close()

    assert healthz[0] == 200 and healthz[1] < 1, f"/healthz during the flood: {healthz}"
    assert {status for status, _ in answers} == {503}
    assert max(seconds for _, seconds in answers) < 1, "an anonymous caller waited on the broker"
    assert 1 <= len(broker.accepted) <= 2, f"{len(broker.accepted)} broker connections"
