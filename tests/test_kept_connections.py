"""A worker thread keeps its SMTP connection across tasks (delivery/connections.py): a
backlog goes out over as many connections as the worker has threads, a connection unused
longer than MAIL_CONNECTION_IDLE is replaced, and one the server dropped costs a retry."""

from harness.processes import wait_for
from harness.smtp_catcher import SmtpCatcher

THREADS = 4


def set_up(site, rabbitmq, smtp, **env):
    site.env = {"CELERY_BROKER_URL": rabbitmq, "EMAIL_URL": smtp.url, "MAIL_RETRY_INTERVAL": "1", **env}


def start_worker(site):
    site.start_worker(env={"WORKER_CONCURRENCY": str(THREADS)})


def test_a_backlog_goes_out_over_one_connection_per_worker_thread(site, rabbitmq, smtp_server):
    set_up(site, rabbitmq, smtp_server)
    site.script("send.py", "--plain", "100")  # ten tasks of ten mails wait in RabbitMQ
    start_worker(site)

    wait_for(lambda: site.statuses() == {"sent": 100}, 60, "100 mails sent")
    assert len(set(smtp_server.peers)) <= THREADS


def test_a_connection_unused_longer_than_the_idle_bound_is_replaced(site, rabbitmq, smtp_server):
    set_up(site, rabbitmq, smtp_server, MAIL_CONNECTION_IDLE="0")
    start_worker(site)
    site.script("send.py", "--plain", "20")

    wait_for(lambda: site.statuses() == {"sent": 20}, 60, "20 mails sent")
    assert len(set(smtp_server.peers)) == 20


def test_a_connection_the_server_dropped_costs_a_retry_not_a_mail(site, rabbitmq):
    with SmtpCatcher() as smtp:
        port = smtp.controller.port
        set_up(site, rabbitmq, smtp)
        start_worker(site)
        site.script("send.py", "--plain", "20")
        wait_for(lambda: site.statuses() == {"sent": 20}, 60, "20 mails sent")
    with SmtpCatcher(port=port) as restarted:  # the server restarted: every kept connection is gone
        site.script("send.py", "--plain", "20", "--tag", " after the restart")

        wait_for(lambda: site.statuses() == {"sent": 40}, 60, "the next 20 sent")
        assert len(restarted.messages) == 20
