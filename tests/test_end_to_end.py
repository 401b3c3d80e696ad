"""A baked site on the machine's RabbitMQ and on RabbitMQ 4, with a real worker and a real SMTP
server."""

import hashlib

from harness.processes import wait_for
from samples import RICH_HTML, RICH_PDF, big_attachment


def test_fifty_mails_arrive_intact_and_are_recorded_as_sent(site, any_rabbitmq, smtp_server):
    site.env = {"CELERY_BROKER_URL": any_rabbitmq, "EMAIL_URL": smtp_server.url}
    site.start("deploy/bin/worker", log="worker.log")

    site.script("send.py", "--plain", "25", "--rich", "25")

    wait_for(lambda: len(smtp_server.messages) >= 50, 60, "50 mails at the SMTP server")
    assert wait_for(lambda: site.statuses() == {"sent": 50}, 30, "50 mails recorded as sent")
    rich = [message for message in smtp_server.messages if message["Subject"].startswith("rich")]
    assert len(rich) == 25
    for message in rich:
        n = int(message["Subject"].split()[1])
        # SMTP ends every line with CRLF.
        assert message.get_body(("html",)).get_content().rstrip("\r\n") == RICH_HTML.format(n=n)
        [attachment] = message.iter_attachments()
        assert attachment.get_filename() == f"report-{n}.pdf"
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_content() == RICH_PDF
    assert len(smtp_server.messages) == 50, f"{len(smtp_server.messages) - 50} duplicates"


def test_a_partial_refusal_is_sent_to_the_others_and_names_the_refused_address(site, rabbitmq, smtp_server):
    site.env = {"CELERY_BROKER_URL": rabbitmq, "EMAIL_URL": smtp_server.url}
    site.start_worker()

    site.script("send.py", "--partly-refused", "3")

    wait_for(lambda: site.statuses() == {"sent": 3}, 60, "3 mails recorded as sent")
    for row in site.script("report.py"):
        n = row["subject"].split()[1]
        assert row["refused"] == {f"reject{n}@example.com": "550 5.1.1 No such user here"}
    assert sorted(message["To"] for message in smtp_server.messages) == [
        f"ok{n}@example.com, reject{n}@example.com" for n in range(3)
    ]


def test_a_20_mb_attachment_arrives_whole_and_holds_back_no_other_mail(site, any_rabbitmq, smtp_server):
    """The task only names the mail: its size does not matter to the broker (RabbitMQ 4 refuses
    messages over 16 MiB by default)."""
    site.env = {"CELERY_BROKER_URL": any_rabbitmq, "EMAIL_URL": smtp_server.url}
    site.start_worker()

    site.script("send.py", "--big", "1", "--plain", "100")

    wait_for(lambda: site.statuses() == {"sent": 101}, 120, "101 mails recorded as sent")
    [big] = [message for message in smtp_server.messages if message["Subject"] == "big 0"]
    [attachment] = big.iter_attachments()
    assert hashlib.sha256(attachment.get_content()).digest() == hashlib.sha256(big_attachment()).digest()
    assert len(smtp_server.messages) == 101
