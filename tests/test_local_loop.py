"""`make run` in a baked site: web, worker, sweeper and a mail catcher, with prefixed output."""

import os
import signal
import urllib.request

from harness.baked_site import BIN, bake, env_file, set_env_file
from harness.needs import service_answers
from harness.processes import wait_for
from harness.smtp_catcher import free_port


def test_make_run_starts_the_whole_site_and_a_mail_sent_lands_in_the_catcher(tmp_path):
    """Baked for an email service whose key is not set yet: the mail still goes to the catcher."""
    site = bake(tmp_path, email_service="postmark")
    # The template's virtualenv stands in for the one `make install` would build.
    (site.path / ".venv").symlink_to(BIN.parent)
    (site.path / ".venv" / ".installed").touch()
    web_port, catcher_port = free_port(), free_port()
    web, catcher = f"127.0.0.1:{web_port}", f"127.0.0.1:{catcher_port}"
    # honcho puts .env into every process's environment, over the one it inherits.
    set_env_file(site, WEB_BIND=web, MAIL_CATCHER=catcher, EMAIL_URL=f"smtp://{catcher}")
    assert (env_file(site)["EMAIL_SERVICE"], env_file(site)["POSTMARK_SERVER_TOKEN"]) == ("postmark", "")
    run = site.start("make", "run", log="run.log")

    def output():
        return (site.path / "run.log").read_text(errors="replace")

    wait_for(lambda: " ready." in output(), 60, "the worker to be ready")
    for process in ("web.1", "worker.1", "sweeper.1", "mail.1"):
        assert f" {process} " in output() and "|" in output(), f"no output prefixed {process}"

    sent = site.manage("send_test_mail", "ada@example.com", "--timeout", "30", check=False)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "sent" in sent.stdout
    wait_for(lambda: "Subject: Test mail" in output(), 10, "the mail in the catcher's output")
    with urllib.request.urlopen(f"http://{web}/healthz", timeout=10) as health:
        assert health.status == 200

    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal stops them all
    run.wait(timeout=30)
    wait_for(
        lambda: not service_answers(web_port) and not service_answers(catcher_port), 20, "everything to stop"
    )
