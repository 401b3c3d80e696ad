"""deploy/cron/<slug>: a valid /etc/cron.d file whose jobs, run the way cron runs them,
hand out queued mail and delete old mail."""

import json
import re
import subprocess
from pathlib import Path

from crontab import CronTab
from harness.baked_site import SCRIPTS, bake, set_env_file
from harness.deployed_site import SITE_USER, UNREACHABLE_BROKER
from harness.processes import wait_for

CRON_FILE = Path("deploy") / "cron" / SITE_USER


def read_cron(site):
    return CronTab(tabfile=str(site.path / CRON_FILE), user=False)


def test_the_cron_file_is_a_valid_cron_d_file(tmp_path):
    site = bake(tmp_path)
    text = (site.path / CRON_FILE).read_text()
    cron = read_cron(site)
    jobs = list(cron)

    # run-parts, which cron.d follows, skips names with anything but these.
    assert re.fullmatch(r"[A-Za-z0-9_-]+", CRON_FILE.name)
    assert text.endswith("\n"), "cron ignores a last line without a newline"
    unparsed = [line for line in cron.lines if isinstance(line, str) and line and not line.startswith("#")]
    assert unparsed == []
    assert dict(cron.env) == {
        "SHELL": "/bin/sh",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "MAILTO": "root",
        "SITE_DIR": f"/srv/{SITE_USER}",
    }
    assert [job.is_valid() and job.is_enabled() for job in jobs] == [True, True]
    for job in jobs:
        assert job.user == SITE_USER
        assert job.command.startswith('cd "$SITE_DIR" && ')
        assert job.command.endswith(">> log/cron.log 2>&1")
        # cron turns an unescaped % into a newline.
        assert not re.search(r"(?<!\\)%", job.command)
    send, cleanup = jobs
    assert "manage.py send_queued_mail " in send.command
    assert send.frequency_per_day() == 24 * 60
    assert "manage.py cleanup_mail " in cleanup.command
    assert cleanup.frequency_per_day() == 1
    assert [str(cleanup.dom), str(cleanup.month), str(cleanup.dow)] == ["*", "*", "*"]


def run_like_cron(site, job, cron):
    """Run a job's command line as cron does: with SHELL -c, as the job's user, with only the
    file's variables in the environment (SITE_DIR pointing at this site)."""
    assert job.user == site.user.pw_name
    environment = {**cron.env, "SITE_DIR": str(site.path)}
    command = job.command.replace("\\%", "%")
    return subprocess.run(
        site.as_owner(cron.env["SHELL"], "-c", command),
        env=environment,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cron_jobs_hand_out_queued_mail_and_delete_old_mail(deployed_site, smtp_server):
    site = deployed_site
    set_env_file(site, EMAIL_URL=smtp_server.url)
    site.start("deploy/bin/worker", log="worker.log")
    site.script("send.py", "--plain", "1", env={"CELERY_BROKER_URL": UNREACHABLE_BROKER})
    old = json.loads(site.run_as_owner(".venv/bin/python", SCRIPTS / "old_mail.py", "100").stdout)
    assert site.statuses() == {"queued": 1, "sent": 1}
    cron = read_cron(site)
    send, cleanup = cron
    log = site.path / "log" / "cron.log"

    ran = run_like_cron(site, send, cron)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
    assert "Handed 1 mails to the workers" in log.read_text()
    wait_for(lambda: smtp_server.messages, 60, "the queued mail at the SMTP server")
    assert wait_for(lambda: site.statuses() == {"sent": 2}, 30, "the queued mail recorded as sent")

    ran = run_like_cron(site, cleanup, cron)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
    assert "Deleted 1 mails" in log.read_text()
    assert site.statuses() == {"sent": 1}, "the old mail is deleted, the new one kept"
    assert not Path(old["attachment"]).exists()
    assert [message["To"] for message in smtp_server.messages] == ["plain0@example.com"]
