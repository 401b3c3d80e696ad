"""Sites, and environments of one site, that share a RabbitMQ virtual host stay apart."""

from collections import Counter

from harness.baked_site import bake
from harness.processes import wait_for
from harness.services import postgres_database
from harness.smtp_catcher import SmtpCatcher

MAILS = 200


def run_site(site, rabbitmq, database, smtp, **env):
    site.env = {"CELERY_BROKER_URL": rabbitmq, "DATABASE_URL": database, "EMAIL_URL": smtp.url, **env}
    site.manage("migrate", "--verbosity", "0")
    return site.start_worker(name=None)


def test_two_sites_and_two_environments_of_one_site_on_one_vhost_each_send_their_own(
    tmp_path, rabbitmq, postgres
):
    names = {"acme": {}, "acme staging": {"MAIL_QUEUE": "acme_mail_staging"}, "beta": {}}
    sites = {
        "acme": bake(tmp_path / "acme"),
        "acme staging": bake(tmp_path / "staging"),
        "beta": bake(tmp_path / "beta", project_name="Beta Mail"),
    }
    with (
        postgres_database("staging") as staging_db,
        postgres_database("beta") as beta_db,
        SmtpCatcher() as acme_smtp,
        SmtpCatcher() as staging_smtp,
        SmtpCatcher() as beta_smtp,
    ):
        servers = {"acme": acme_smtp, "acme staging": staging_smtp, "beta": beta_smtp}
        databases = {"acme": postgres, "acme staging": staging_db, "beta": beta_db}
        for name, site in sites.items():
            run_site(site, rabbitmq, databases[name], servers[name], **names[name])
        for name, site in sites.items():
            site.script("send.py", "--plain", str(MAILS), "--tag", f" from {name}")
        for name, site in sites.items():
            wait_for(lambda site=site: site.statuses() == {"sent": MAILS}, 120, f"{name}: {MAILS} sent")

        for name, site in sites.items():
            own = {row["message_id"] for row in site.script("report.py")}
            arrived = Counter(message["Message-ID"] for message in servers[name].messages)
            assert set(arrived) == own, f"{name}'s server got other mail than {name}'s"
            assert max(arrived.values()) == 1, f"{name}: a mail arrived twice"
            subjects = {message["Subject"].split(" from ", 1)[1] for message in servers[name].messages}
            assert subjects == {name}
            assert "is not this site's" not in (site.path / "worker-default.log").read_text()
        for site in sites.values():
            site.stop_all()


def test_a_task_of_another_site_on_the_same_queue_is_dropped_unsent(tmp_path, rabbitmq, postgres):
    """Two environments left on one queue (MAIL_QUEUE not set for the second): the first one's
    worker takes the second one's tasks, finds that the rows they name are not those mails,
    and sends nothing."""
    production, staging = bake(tmp_path / "production"), bake(tmp_path / "staging")
    with postgres_database("staging") as staging_db, SmtpCatcher() as smtp:
        production.env = {"CELERY_BROKER_URL": rabbitmq, "DATABASE_URL": postgres, "EMAIL_URL": smtp.url}
        production.manage("migrate", "--verbosity", "0")
        production.script("send.py", "--plain", "20", env={"CELERY_BROKER_URL": "amqp://127.0.0.1:1//"})
        run_site(production, rabbitmq, postgres, smtp)
        staging.env = {"CELERY_BROKER_URL": rabbitmq, "DATABASE_URL": staging_db}
        staging.manage("migrate", "--verbosity", "0")

        staging.script("send.py", "--plain", "20", "--tag", " staging")

        log = production.path / "worker-default.log"
        wait_for(lambda: log.read_text().count("is not this site's") == 20, 60, "20 foreign tasks dropped")
        assert smtp.messages == []
        assert production.statuses() == {"queued": 20}, "production's own rows were not touched"
        assert staging.statuses() == {"handed_off": 20}
        production.stop_all()
