"""Each email-service choice delivers through the worker, against a local stand-in for the service's API."""

import pytest
from choices import CHOICES
from conftest import bake, wait_for
from fake_email_api import FakeEmailApi

SERVICES = [service for service in CHOICES["email_service"] if service != "smtp"]


def service_env(service, url):
    """Point the baked site's settings at the stand-in (with made-up credentials)."""
    return {
        "amazon_ses": {
            "AWS_SES_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "made-up",
            "AWS_SECRET_ACCESS_KEY": "made-up",
            "AWS_EC2_METADATA_DISABLED": "true",  # never look for credentials off this machine
        },
        "brevo": {"BREVO_API_URL": f"{url}v3/", "BREVO_API_KEY": "made-up"},
        "mailgun": {"MAILGUN_API_URL": f"{url}v3", "MAILGUN_API_KEY": "made-up"},
        "postmark": {"POSTMARK_API_URL": url, "POSTMARK_SERVER_TOKEN": "made-up"},
        "sendgrid": {"SENDGRID_API_URL": f"{url}v3/", "SENDGRID_API_KEY": "made-up"},
    }[service]


@pytest.mark.parametrize("service", SERVICES)
def test_the_worker_delivers_through_the_email_service(tmp_path, service):
    site = bake(tmp_path, email_service=service)
    with FakeEmailApi(service) as api:
        site.env = {**service_env(service, api.url), "MAIL_RETRY_INTERVAL": "1"}
        site.manage("migrate", "--verbosity", "0")
        site.start_worker()

        site.script("send.py", "--plain", "3", "--flaky", "1", "--rejected", "1")

        wait_for(lambda: site.statuses() == {"sent": 4, "failed": 1}, 60, "4 mails sent and 1 refused")
    site.stop_all()
    rows = {row["subject"]: row for row in site.script("report.py")}
    for subject in ("plain 0", "plain 1", "plain 2", "flaky 0"):
        assert any(subject in request for request in api.requests), f"{subject!r} never reached the service"
    assert rows["rejected 0"]["status"] == "failed"
    assert "400" in rows["rejected 0"]["last error"] or "not verified" in rows["rejected 0"]["last error"]
    # boto3 retries a 503 from Amazon SES itself; the other services' 503 is a failed attempt.
    assert rows["flaky 0"]["failed attempts"] == (0 if service == "amazon_ses" else 1)
