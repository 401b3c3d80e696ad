"""compose.monitoring.yaml brought up for real over compose.yaml and compose.override.yaml:
Prometheus (Debian's, in a stand-in for prom/prometheus) reads the site's /metrics with the
token and RabbitMQ's own endpoint, loads the alert rules, and holds the mail the test sent;
every query of the dashboard returns data from it. Grafana cannot be pulled here, so it is not
started: its dashboard is checked by running its queries against this Prometheus."""

import json
import re
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from harness.baked_site import bake, env_file, set_env_file
from harness.compose_site import ComposeSite, brought_up
from harness.containers import CONTAINERS
from harness.processes import wait_for
from harness.smtp_catcher import free_port
from harness.stand_ins import IMAGES, build_base, build_stand_in, full_name, lock
from test_metrics import LIMITS

pytestmark = CONTAINERS
FILES = ("compose.yaml", "compose.override.yaml", "compose.monitoring.yaml")
NOT_HERE = {"grafana"}  # no registry to pull it from, and no stand-in


class MonitoredSite(ComposeSite):
    """The site with compose.monitoring.yaml: every service but those that cannot run here."""

    def up(self, *services):
        if not services:
            listed = self.compose("config", "--services").stdout.split()
            services = [service for service in listed if service not in NOT_HERE]
        super().up(*services)

    def query(self, promql):
        """The result of an instant query to the compose project's Prometheus."""
        url = f"http://127.0.0.1:{self.ports['PROMETHEUS_PORT']}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.load(answer)["data"]["result"]

    def api(self, path):
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.ports['PROMETHEUS_PORT']}{path}", timeout=10
        ) as answer:
            return json.load(answer)["data"]


@pytest.fixture(scope="module")
def monitored(engine, stand_ins, tmp_path_factory):
    baked = bake(tmp_path_factory.mktemp("compose-monitoring"))
    set_env_file(baked, MAIL_RATE_LIMIT="14/s", MAIL_DAILY_QUOTA="50000")  # SES's first production figures
    site = MonitoredSite(baked, engine, files=FILES)
    site.ports.update(PROMETHEUS_PORT=str(free_port()), GRAFANA_PORT=str(free_port()))
    image = yaml.safe_load((site.site.path / "compose.monitoring.yaml").read_text())["services"][
        "prometheus"
    ]["image"]
    workdir = tmp_path_factory.mktemp("prometheus-image")
    with lock(Path(tempfile.gettempdir()) / "template-tests-images.lock"):
        base, _ = build_base(engine, workdir)
        build_stand_in(engine, base, IMAGES / "prometheus", [full_name(image)], workdir)
    with brought_up(site, "compose monitoring"):
        yield site


def test_prometheus_reads_the_sites_metrics_with_the_token_and_rabbitmqs(monitored):
    def every_target_up():
        up = {result["metric"]["job"]: result["value"][1] for result in monitored.query("up")}
        return up if up == {"mail": "1", "rabbitmq": "1", "rabbitmq-queues": "1"} else None

    wait_for(every_target_up, 90, "Prometheus scraping the site and RabbitMQ (two scrapes of 15 s)")
    queue = env_file(monitored.site)["MAIL_QUEUE"]

    def consumed():
        consumers = monitored.query(f'sum(rabbitmq_detailed_queue_consumers{{queue="{queue}"}})')
        return consumers and float(consumers[0]["value"][1]) >= 1

    # The first scrapes may come before the worker declared its queue.
    wait_for(consumed, 60, f"RabbitMQ's metrics to show a consumer of the queue {queue}")


def test_a_promql_query_returns_the_mails_the_test_sent(monitored):
    for to in ("ada@example.com", "bob@example.com"):
        assert monitored.send_test_mail(to).returncode == 0
    assert monitored.statuses() == {"ada@example.com": "sent", "bob@example.com": "sent"}

    def sent():
        result = monitored.query('sum(mail_finished_total{state="sent"})')
        return result and result[0]["value"][1] == "2"

    # The worker adds its counts every 5 s; Prometheus scrapes every 15 s.
    wait_for(sent, 60, "Prometheus to hold the 2 mails sent")
    [histogram] = monitored.query("sum(mail_time_to_server_seconds_count)")
    assert histogram["value"][1] == "2"


def test_every_dashboard_query_returns_data(monitored):
    dashboard = json.loads((monitored.site.path / "deploy/grafana/dashboards/mail.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert any(set(re.findall(r"mail_[a-z_]+", query)) & LIMITS for query in queries)

    def every_query_answers():
        return all(monitored.query(query) for query in queries)

    # Rates need two scrapes within their window.
    wait_for(every_query_answers, 90, f"every one of these queries to return data: {queries}")


def test_the_alert_rules_are_loaded_and_evaluated(monitored):
    alerts = yaml.safe_load((monitored.site.path / "deploy/prometheus/alerts.yml").read_text())
    expected = {rule["alert"] for rule in alerts["groups"][0]["rules"]}

    [group] = monitored.api("/api/v1/rules")["groups"]

    assert {rule["name"] for rule in group["rules"]} == expected
    assert {rule["health"] for rule in group["rules"]} == {"ok"}
    firing = {alert["labels"]["alertname"] for alert in monitored.api("/api/v1/alerts")["alerts"]}
    assert "MailNoWorkerConsuming" not in firing
