"""A baked site's /metrics, alert rules and dashboard: counts against the database after a
real worker sent, refused and retried mail; every alert rule through `promtool test rules`;
the dashboard's queries parsed by promtool and naming only exported metrics; and a scrape of
a million mails on PostgreSQL that reads indexes, not the mail table."""

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import yaml
from harness.baked_site import bake, env_file
from harness.figures import report
from harness.needs import cannot_run, service_answers
from harness.processes import wait_for
from harness.smtp_catcher import SmtpCatcher, free_port
from prometheus_client.parser import text_string_to_metric_families

# Exported once the site has a rate limit and a daily quota; named by the alerts and dashboard now.
LIMITS = {
    "mail_rate_limit_per_second",
    "mail_rate_in_use_per_second",
    "mail_daily_quota",
    "mail_daily_quota_used",
}
# RabbitMQ's own metrics the dashboard shows (rabbitmq_prometheus, per queue).
RABBITMQ = {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_consumers"}


def promtool():
    """Debian's `prometheus` package has it (apt-get install prometheus)."""
    found = shutil.which("promtool")
    if found is None:
        cannot_run("promtool is missing: apt-get install prometheus", "prometheus")
    return found


def run(*args, cwd=None):
    result = subprocess.run([*map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"`{' '.join(map(str, args))}`:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class RefusesOnce(SmtpCatcher):
    """Refuses each "flaky" recipient once for now (451), then takes it."""

    def __init__(self):
        super().__init__()
        self.refused_once = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("flaky") and address not in self.refused_once:
            self.refused_once.add(address)
            return "451 4.3.0 Try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def scrape(url, token=None):
    """(status, {(name, sorted labels but the lane): value}) of a GET of /metrics."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as answer:
            text = answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {}
    samples = {}  # added up over the lanes
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "lane"))
            samples[sample.name, labels] = samples.get((sample.name, labels), 0) + sample.value
    return 200, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_give_what_the_database_holds_after_a_real_worker_sent_refused_and_retried(site, rabbitmq):
    with RefusesOnce() as server:
        site.env = {"CELERY_BROKER_URL": rabbitmq, "EMAIL_URL": server.url, "MAIL_RETRY_INTERVAL": "1"}
        token = env_file(site)["HEALTH_TOKEN"]
        site.start_worker(env={"WORKER_PROCESSES": "2"})  # each process beats on its own
        port = free_port()
        site.start("deploy/bin/web", env={"WEB_BIND": f"127.0.0.1:{port}"}, log="web.log")
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: service_answers(port), 30, "gunicorn listening")

        site.script("send.py", "--plain", "5", "--rejected", "2", "--flaky", "3")

        wait_for(lambda: site.statuses() == {"sent": 8, "failed": 2}, 60, "8 mails sent, 2 failed")
        expected = {
            ("mail_finished_total", (("state", "sent"),)): 8,
            ("mail_finished_total", (("state", "failed"),)): 2,
            ("mail_attempts_total", (("outcome", "sent"),)): 8,
            ("mail_attempts_total", (("outcome", "refused"),)): 2,
            ("mail_attempts_total", (("outcome", "passing"),)): 3,
            ("mail_time_to_server_seconds_count", ()): 8,
            ("mail_workers_consuming", ()): 2,
        }

        # The worker adds its counts every 5 seconds.
        def counted():
            samples = scrape(url, token)[1]
            return samples if all(samples.get(key) == count for key, count in expected.items()) else None

        samples = wait_for(counted, 30, f"/metrics to give {expected}")
        unsent = {key: count for key, count in samples.items() if key[0] == "mail_unsent" and count}
        assert unsent == {}, "every mail sent or failed: nothing unsent"
        assert value(samples, "mail_time_to_server_seconds_bucket", le="+Inf") == 8
        assert value(samples, "mail_oldest_waiting_seconds") == 0
        assert len(server.messages) == 8
        assert scrape(url)[0] == 401
        assert scrape(url, "not-the-token")[0] == 403


def test_every_alert_rule_fires_on_its_series_and_stays_quiet_on_others(tmp_path):
    site = bake(tmp_path)
    folder = site.path / "deploy" / "prometheus"

    run(promtool(), "check", "rules", "alerts.yml", cwd=folder)
    tested = run(promtool(), "test", "rules", "alerts.test.yml", cwd=folder)

    assert "SUCCESS" in tested
    alerts = {
        rule["alert"] for rule in yaml.safe_load((folder / "alerts.yml").read_text())["groups"][0]["rules"]
    }
    checks = [
        check
        for test in yaml.safe_load((folder / "alerts.test.yml").read_text())["tests"]
        for check in test["alert_rule_test"]
    ]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fired == alerts, f"no series fire {alerts - fired}"
    assert quiet == alerts, f"no series leave {alerts - quiet} quiet"
    # The compose file's Prometheus takes the config (the token file made up for the check).
    config = (folder / "prometheus.yml").read_text()
    (tmp_path / "token").write_text("x")
    (folder / "check.yml").write_text(config.replace("/prometheus/health-token", str(tmp_path / "token")))
    run(promtool(), "check", "config", "check.yml", cwd=folder)


def test_the_dashboard_and_alerts_query_valid_promql_on_metrics_the_site_exports(tmp_path):
    site = bake(tmp_path)
    site.manage("migrate", "--verbosity", "0")
    dashboard = json.loads((site.path / "deploy/grafana/dashboards/mail.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    alerts = (site.path / "deploy/prometheus/alerts.yml").read_text()

    # promtool parses each query as a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{number}", "expr": query}
                    for number, query in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    run(promtool(), "check", "rules", tmp_path / "queries.yml")

    code = (
        "from django.conf import settings; from django.test import Client; "
        "answer = Client().get('/metrics', headers={'Authorization': 'Bearer ' + settings.HEALTH_TOKEN}, "
        "HTTP_HOST='localhost'); print(answer.content.decode())"
    )
    exported = {
        family.name
        for family in text_string_to_metric_families(site.manage("shell", "--no-imports", "-c", code).stdout)
    }
    named = set(re.findall(r"\b(mail_[a-z_]+|rabbitmq_[a-z_]+)", " ".join(queries) + alerts))
    suffixes = re.compile(r"_(total|bucket|sum|count)$")
    unknown = {name for name in named if suffixes.sub("", name) not in exported} - LIMITS - RABBITMQ
    assert unknown == set(), f"queries name metrics the site does not export: {unknown}"
    assert {"mail_unsent", "mail_attempts", "mail_time_to_server_seconds"} <= exported


def test_a_scrape_of_a_million_mails_reads_indexes_not_the_mail_table(tmp_path, postgres):
    site = bake(tmp_path)
    site.env = {"DATABASE_URL": postgres}
    site.manage("migrate", "--verbosity", "0")
    # 1,000,000 mails: 990,000 sent, 10,000 waiting (queued, scheduled, retrying).
    fill = subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", postgres.replace("postgres://", "postgresql://")],
        input=MILLION_MAILS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fill.returncode == 0, fill.stderr

    measured = site.script("metrics_scrape.py", timeout=300)

    # The mail's tables; the pace and the quota's hourly counts are a few rows a mailer.
    mail_tables = ("post_office_email", "delivery_delivery", "delivery_de")
    on_mail = [scan for scan in measured["scans"] if str(scan[1] or scan[2]).startswith(mail_tables)]
    assert on_mail, measured
    assert [scan for scan in on_mail if scan[0] == "Seq Scan"] == [], on_mail
    # Each scan reads about the mails that wait, not the million kept.
    assert max(rows for *_, rows in on_mail) <= 2 * measured["waiting"], on_mail
    assert measured["queries"] <= 14, measured
    assert measured["waiting"] == 10_000
    report(
        f"[metrics] one scrape of /metrics on PostgreSQL, 1,000,000 mails of which 10,000 wait: "
        f"{measured['ms']:.0f} ms (median of 5), {measured['queries']} queries, load {os.getloadavg()[0]:.1f}"
    )


MILLION_MAILS = """
INSERT INTO post_office_email (id, from_email, "to", cc, bcc, subject, message, html_message,
    status, priority, created, last_updated, backend_alias, number_of_retries, message_id)
SELECT n, 'noreply@example.com', 'user' || n || '@example.com', '', '', 'Mail ' || n, 'Body', '',
    CASE WHEN n % 100 = 0 THEN 2 ELSE 0 END, 1, now() - make_interval(secs => n),
    now() - make_interval(secs => n), '', 0, '<' || n || '@example.com>'
FROM generate_series(1, 1000000) AS n;
INSERT INTO delivery_delivery (email_id, state, due, changed, version, failed_attempts, fault, reason,
    refused, lane)
SELECT n,
    CASE WHEN n % 100 <> 0 THEN 'sent' WHEN n % 500 = 0 THEN 'retrying'
         WHEN n % 300 = 0 THEN 'scheduled' ELSE 'queued' END,
    CASE WHEN n % 100 <> 0 THEN NULL ELSE now() + interval '1 minute' END,
    now() - make_interval(secs => n), 1, 0, CASE WHEN n % 500 = 0 THEN 'passing' ELSE '' END, '', '{}',
    CASE WHEN n % 7 = 0 THEN 'bulk' ELSE 'transactional' END
FROM generate_series(1, 1000000) AS n;
SELECT setval(pg_get_serial_sequence('post_office_email', 'id'), 1000000);
VACUUM ANALYZE;
"""
