"""`manage.py send_test_mail` of a baked site, on the machine's RabbitMQ with a real worker."""


def test_a_test_mail_arrives_and_the_command_says_sent(site, rabbitmq, smtp_server):
    site.env = {"CELERY_BROKER_URL": rabbitmq, "EMAIL_URL": smtp_server.url}
    site.start("deploy/bin/worker", log="worker.log")

    result = site.manage("send_test_mail", "ada@example.com", "--timeout", "60")

    assert result.stdout.splitlines()[-1] == "sent: the mail server accepted it"
    [message] = smtp_server.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"].startswith("Test mail ")
    assert site.statuses() == {"sent": 1}


def test_without_a_worker_the_command_says_still_queued_and_fails(site, rabbitmq):
    site.env = {"CELERY_BROKER_URL": rabbitmq}

    result = site.manage("send_test_mail", "ada@example.com", "--timeout", "2", check=False)

    assert result.returncode != 0
    assert result.stdout.splitlines()[-1] == "still queued: is a worker running? is the broker reachable?"
