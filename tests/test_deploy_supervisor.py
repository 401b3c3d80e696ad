"""deploy/supervisor/<slug>.conf, included unchanged by a real supervisord that runs the site
as its own user against PostgreSQL, the machine's RabbitMQ and a real SMTP server."""

import configparser
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import urllib.request
import xmlrpc.client
from collections import Counter
from pathlib import Path

import pytest
from harness.baked_site import BIN, bake, set_env_file
from harness.deployed_site import SITE_USER
from harness.needs import service_answers
from harness.processes import wait_for
from harness.smtp_catcher import SmtpCatcher, free_port
from supervisor.xmlrpc import SupervisorTransport

WEB = f"{SITE_USER}:{SITE_USER}-web"
WORKER = f"{SITE_USER}:{SITE_USER}-worker"


class Supervisord:
    """supervisord with a config of its own that includes the site's file unchanged.

    `environment` is supervisord's own environment, as its systemd unit or the
    [supervisord] section would give it; the programs inherit it.
    """

    def __init__(self, site, python_view, **environment):
        self.folder = site.path.parent
        self.socket = self.folder / "supervisor.sock"
        self.config = self.folder / "supervisord.conf"
        self.config.write_text(
            f"""[supervisord]
logfile={self.folder / "supervisord.log"}
pidfile={self.folder / "supervisord.pid"}
environment={",".join(f'{name}="{value}"' for name, value in environment.items())}

[unix_http_server]
file={self.socket}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.socket}

[include]
files = {site.path / "deploy" / "supervisor" / f"{SITE_USER}.conf"}
"""
        )
        # Only what a service manager would give it: no test settings leak into the site.
        self.process = subprocess.Popen(
            [*python_view, BIN / "supervisord", "--nodaemon", "--configuration", self.config],
            env={"PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ctl(self, *args):
        """Run supervisorctl as an admin would; return what it printed."""
        result = subprocess.run(
            [BIN / "supervisorctl", "--configuration", self.config, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"supervisorctl {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def processes(self):
        """{name: (state, pid)} for every program, or {} while supervisord is starting."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            infos = xmlrpc.client.ServerProxy("http://localhost", transport).supervisor.getAllProcessInfo()
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault):
            return {}
        return {f"{info['group']}:{info['name']}": (info["statename"], info["pid"]) for info in infos}

    def running(self):
        """{name: pid} once every program is RUNNING, else None."""
        processes = self.processes()
        if processes and all(state == "RUNNING" for state, _ in processes.values()):
            return {name: pid for name, (_, pid) in processes.items()}
        return None

    def shutdown(self):
        """Stop supervisord and its programs; kill them if they take too long."""
        programs = [pid for _, pid in self.processes().values() if pid]
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in [self.process.pid, *programs]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def supervisord(deployed_site, python_view):
    """Start supervisord for the deployed site: `supervisord(**environment)`."""
    started = []

    def start(**environment):
        started.append(Supervisord(deployed_site, python_view, **environment))
        return started[-1]

    yield start
    for supervisor in started:
        supervisor.shutdown()


def owner_uid(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)[1])


def get(url):
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_supervisord_runs_web_and_worker_as_the_site_user_and_restarts_a_killed_worker(
    deployed_site, supervisord, smtp_server
):
    site = deployed_site
    set_env_file(site, EMAIL_URL=smtp_server.url)
    port = free_port()
    supervisor = supervisord(**{f"{SITE_USER.upper()}_USER": SITE_USER, "WEB_BIND": f"127.0.0.1:{port}"})

    pids = wait_for(supervisor.running, 60, "web and worker RUNNING")
    assert set(pids) == {WEB, WORKER}
    assert {owner_uid(pid) for pid in pids.values()} == {site.user.pw_uid}
    wait_for(lambda: service_answers(port), 30, "gunicorn listening")

    status, page = get(f"http://127.0.0.1:{port}/admin/login/")
    assert status == 200
    assert 'name="password"' in page
    web_log = site.path / "log" / "web.log"
    wait_for(lambda: "/admin/login/" in web_log.read_text(), 10, "the request in log/web.log")
    assert "[ERROR]" not in web_log.read_text()

    site.script("send.py", "--plain", "3")
    wait_for(lambda: len(smtp_server.messages) >= 3, 60, "3 mails at the SMTP server")
    assert wait_for(lambda: site.statuses() == {"sent": 3}, 30, "3 mails recorded as sent")
    # One worker process per core: mail@host alone, mail-1@host, mail-2@host... with more.
    node = rf"mail(?:-\d+)?@{re.escape(socket.gethostname())} ready\."

    def ready():
        return re.findall(node, (site.path / "log" / "worker.log").read_text())

    wait_for(lambda: len(ready()) == len(os.sched_getaffinity(0)), 30, "a worker process per core ready")

    os.kill(pids[WORKER], signal.SIGKILL)
    restarted = wait_for(
        lambda: (now := supervisor.running()) and now[WORKER] != pids[WORKER] and now,
        60,
        "the killed worker RUNNING again with a new pid",
    )
    assert restarted[WEB] == pids[WEB]

    site.script("send.py", "--plain", "2")
    wait_for(lambda: len(smtp_server.messages) >= 5, 60, "2 more mails through the new worker")
    assert wait_for(lambda: site.statuses() == {"sent": 5}, 30, "5 mails recorded as sent")


def test_stopping_the_worker_in_the_middle_of_a_batch_loses_no_mail(deployed_site, supervisord):
    site = deployed_site
    with SmtpCatcher(delay=0.2) as smtp_server:
        set_env_file(site, EMAIL_URL=smtp_server.url)
        # Two tasks of 10 mails at a time: most of the batch waits in RabbitMQ.
        supervisor = supervisord(**{f"{SITE_USER.upper()}_USER": SITE_USER, "WORKER_CONCURRENCY": "2"})
        wait_for(supervisor.running, 60, "web and worker RUNNING")

        site.script("send.py", "--plain", "30")
        wait_for(lambda: smtp_server.messages, 30, "the first mail at the SMTP server")
        supervisor.ctl("stop", WORKER)
        delivered = len(smtp_server.messages)
        assert delivered < 30, "the worker stopped after the batch, not in the middle of it"
        # A warm stop: every mail in flight was finished and recorded, none left "sending".
        assert site.statuses() == {"sent": delivered, "handed_off": 30 - delivered}

        supervisor.ctl("start", WORKER)
        wait_for(lambda: len(smtp_server.messages) >= 30, 60, "30 mails at the SMTP server")
        assert wait_for(lambda: site.statuses() == {"sent": 30}, 30, "30 mails recorded as sent")
        arrived = Counter(message["Subject"] for message in smtp_server.messages)
        lost = {f"plain {n}" for n in range(30)} - set(arrived)
        duplicates = {subject: count for subject, count in arrived.items() if count > 1}
        assert (lost, duplicates) == (set(), {})


def test_supervisord_refuses_to_start_without_the_site_user_variable(tmp_path):
    site = bake(tmp_path)
    config = tmp_path / "supervisord.conf"
    config.write_text(
        f"[supervisord]\nlogfile={tmp_path / 'supervisord.log'}\n\n"
        f"[include]\nfiles = {site.path / 'deploy' / 'supervisor' / f'{SITE_USER}.conf'}\n"
    )
    result = subprocess.run(
        [BIN / "supervisord", "--nodaemon", "--configuration", config],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert f"ENV_{SITE_USER.upper()}_USER" in result.stdout + result.stderr


def test_the_supervisor_programs_stop_gently_restart_and_log_to_files(tmp_path):
    site = bake(tmp_path)
    config = configparser.RawConfigParser()
    config.read(site.path / "deploy" / "supervisor" / f"{SITE_USER}.conf")
    programs = {name.removeprefix("program:"): config[name] for name in config if name.startswith("program:")}
    web = (site.path / "deploy" / "bin" / "web").read_text()
    graceful_timeout = int(re.search(r"--graceful-timeout (\d+)", web)[1])
    longest_task = site.manage(
        "shell",
        "--verbosity",
        "0",
        "--command",
        "from django.conf import settings; "
        "print(settings.CELERY_EMAIL_CHUNK_SIZE * settings.MAILERS['transport']['OPTIONS']['timeout'])",
    ).stdout

    assert config[f"group:{SITE_USER}"]["programs"].split(",") == list(programs)
    assert {name: program["command"] for name, program in programs.items()} == {
        f"{SITE_USER}-web": "%(here)s/../bin/web",
        f"{SITE_USER}-worker": "%(here)s/../bin/worker",
    }
    for program in programs.values():
        assert program["user"] == f"%(ENV_{SITE_USER.upper()}_USER)s"
        assert program["directory"] == "%(here)s/../.."
        assert program["stdout_logfile"].startswith("%(here)s/../../log/")
        assert (program["autorestart"], program["stopasgroup"], program["killasgroup"]) == ("true",) * 3
        assert program["redirect_stderr"] == "true"
    assert int(programs[f"{SITE_USER}-web"]["stopwaitsecs"]) > graceful_timeout
    assert int(programs[f"{SITE_USER}-worker"]["stopwaitsecs"]) > int(longest_task)
