"""deploy/bin/worker on one host: one process per core, WORKER_CONCURRENCY threads split among
them, each its own node; they stop together, and a killed parent takes them with it."""

import os
import signal
import socket
import subprocess

from harness.processes import wait_for

HOST = socket.gethostname()


def start(site, rabbitmq, smtp_server, **env):
    site.env = {"CELERY_BROKER_URL": rabbitmq, "EMAIL_URL": smtp_server.url, "WORKER_NAME": "mail", **env}
    return site.start("deploy/bin/worker", log="worker.log")


def log(site):
    return (site.path / "worker.log").read_text(errors="replace")


def answers(site):
    return site.run("python", "-m", "config.workers", "ping", check=False).returncode == 0


def group(pgid):
    """The pids of the processes left in a process group."""
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True, check=False)
    return {int(pid) for pid in found.stdout.split()}


def test_one_process_per_core_by_default_each_a_node_with_its_share_of_the_threads(
    site, rabbitmq, smtp_server
):
    cores = len(os.sched_getaffinity(0))
    start(site, rabbitmq, smtp_server, WORKER_CONCURRENCY="5")
    names = [f"mail-{n}@{HOST}" for n in range(1, cores + 1)] if cores > 1 else [f"mail@{HOST}"]
    wait_for(lambda: all(f"{name} ready." in log(site) for name in names), 60, f"{names} ready")

    shares = [5 // cores + (n < 5 % cores) for n in range(cores)]
    assert sorted(
        int(line.split()[-2]) for line in log(site).splitlines() if "concurrency:" in line
    ) == sorted(shares)
    assert answers(site)
    site.script("send.py", "--plain", "30")
    assert wait_for(lambda: site.statuses() == {"sent": 30}, 60, "30 mails sent")


def test_one_process_killed_stops_the_others_and_the_command_ends(site, rabbitmq, smtp_server):
    worker = start(site, rabbitmq, smtp_server, WORKER_PROCESSES="2", WORKER_CONCURRENCY="4")
    wait_for(lambda: log(site).count(" ready.") == 2, 60, "both processes ready")
    first, _ = sorted(group(worker.pid) - {worker.pid})

    os.kill(first, signal.SIGKILL)

    wait_for(lambda: worker.poll() is not None, 60, "the command to end")
    assert worker.returncode == 128 + signal.SIGKILL
    assert group(worker.pid) == set()
    assert "Warm shutdown" in log(site), "the other process stopped warmly"
    assert not answers(site)


def test_the_command_killed_takes_its_processes_with_it(site, rabbitmq, smtp_server):
    worker = start(site, rabbitmq, smtp_server, WORKER_PROCESSES="2", WORKER_CONCURRENCY="4")
    wait_for(lambda: log(site).count(" ready.") == 2, 60, "both processes ready")
    assert len(group(worker.pid)) == 3

    os.kill(worker.pid, signal.SIGKILL)  # the command alone, as a crash would

    wait_for(lambda: not group(worker.pid) - {worker.pid}, 30, "its processes gone")
    assert not answers(site)


def test_term_stops_every_process_warmly(site, rabbitmq, smtp_server):
    worker = start(site, rabbitmq, smtp_server, WORKER_PROCESSES="2", WORKER_CONCURRENCY="4")
    wait_for(lambda: log(site).count(" ready.") == 2, 60, "both processes ready")

    os.kill(worker.pid, signal.SIGTERM)

    wait_for(lambda: worker.poll() is not None, 60, "the command to end")
    assert worker.returncode == 0
    assert log(site).count("Warm shutdown") == 2
