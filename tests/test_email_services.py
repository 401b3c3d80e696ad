"""One bake, switched through .env alone, delivers through the worker over SMTP and through
each email service's API (a local stand-in for it)."""

from harness.baked_site import bake, env_file, set_env_file
from harness.fake_email_api import FakeEmailApi
from harness.processes import wait_for

SERVICES = ["amazon_ses", "brevo", "mailgun", "postmark", "sendgrid"]
# What each service needs in .env to be used, pointed at the stand-in (made-up credentials).
SERVICE_ENV = {
    "amazon_ses": lambda url: {
        "AWS_REGION": "eu-west-1",
        "AWS_SES_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "made-up",
        "AWS_SECRET_ACCESS_KEY": "made-up",
    },
    "brevo": lambda url: {"BREVO_API_URL": f"{url}v3/", "BREVO_API_KEY": "made-up"},
    "mailgun": lambda url: {"MAILGUN_API_URL": f"{url}v3", "MAILGUN_API_KEY": "made-up"},
    "postmark": lambda url: {"POSTMARK_API_URL": url, "POSTMARK_SERVER_TOKEN": "made-up"},
    "sendgrid": lambda url: {"SENDGRID_API_URL": f"{url}v3/", "SENDGRID_API_KEY": "made-up"},
}


def deliver_samples(site):
    """Send 3 plain mails, one the server refuses once and one it refuses for good; wait for
    the outcome; return the rows by subject."""
    site.manage("flush", "--noinput")
    worker = site.start_worker()
    site.script("send.py", "--plain", "3", "--flaky", "1", "--rejected", "1")
    wait_for(lambda: site.statuses() == {"sent": 4, "failed": 1}, 60, "4 mails sent and 1 refused")
    site.stop(worker)
    return {row["subject"]: row for row in site.script("report.py")}


def test_one_bake_switches_between_smtp_and_every_service_through_env(tmp_path, smtp_server):
    site = bake(tmp_path)
    # The worker must not look for AWS credentials off this machine.
    site.env = {"MAIL_RETRY_INTERVAL": "1", "AWS_EC2_METADATA_DISABLED": "true"}
    site.manage("migrate", "--verbosity", "0")
    assert env_file(site)["EMAIL_SERVICE"] == "smtp"

    set_env_file(site, EMAIL_URL=smtp_server.url)
    rows = deliver_samples(site)
    assert {message["Subject"] for message in smtp_server.messages} >= {"plain 0", "plain 1", "flaky 0"}
    assert "No such user here" in rows["rejected 0"]["last error"]

    for service in SERVICES:
        with FakeEmailApi(service) as api:
            set_env_file(site, EMAIL_SERVICE=service, **SERVICE_ENV[service](api.url))
            caught = len(smtp_server.messages)
            rows = deliver_samples(site)
        assert len(smtp_server.messages) == caught, f"{service}: mail went to the SMTP server"
        for subject in ("plain 0", "plain 1", "plain 2", "flaky 0"):
            arrived = any(subject in request for request in api.requests)
            assert arrived, f"{service}: {subject!r} never arrived"
        refused = rows["rejected 0"]
        assert refused["status"] == "failed"
        assert "400" in refused["last error"] or "not verified" in refused["last error"], service
        # boto3 retries a 503 from Amazon SES itself; the other services' 503 is a failed attempt.
        assert rows["flaky 0"]["failed attempts"] == (0 if service == "amazon_ses" else 1), service
