"""The Celery workers that deliver mail on one host, as deploy/bin/worker starts them.

One process per core (WORKER_PROCESSES): a process runs Python on one core at a time (the
GIL). WORKER_CONCURRENCY threads in all (20 by default) are split among them: a thread
mostly waits for a mail server. Alone, the worker is MAIL_QUEUE@host (config/celery.py);
with more, they are MAIL_QUEUE-1@host, MAIL_QUEUE-2@host... (WORKER_NAME instead of
MAIL_QUEUE for a second set on one host). The connections (MAIL_MAX_CONNECTIONS) and the
rate limit are the site's, shared by every process (delivery/slots.py, delivery/pace.py).

    python -m config.workers        start them; they stop together
    python -m config.workers ping   exit 0 while every one of them answers through the broker
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys

from .celery import app

# The environment, .env filling in, as for the settings; an empty value means the default.
from .settings import MAIL_QUEUE, env

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def processes():
    """WORKER_PROCESSES, or the cores this process may run on; never more than the threads."""
    cores = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    return max(1, min(int(env("WORKER_PROCESSES", default="") or cores), threads()))


def threads():
    return int(env("WORKER_CONCURRENCY", default="") or 20)


def node_names():
    """The node name of each process, with %h for the host as Celery writes it."""
    name = env("WORKER_NAME", default="") or MAIL_QUEUE
    count = processes()
    return [f"{name}@%h"] if count == 1 else [f"{name}-{n}@%h" for n in range(1, count + 1)]


def commands():
    """The command line of each process, its share of the threads with it."""
    names, total = node_names(), threads()
    shares = [total // len(names) + (n < total % len(names)) for n in range(len(names))]
    level = env("WORKER_LOG_LEVEL", default="") or "INFO"
    worker = ["celery", "-A", "config", "worker", "--pool", "threads", "--loglevel", level]
    return [
        [*worker, "--concurrency", str(share), "--hostname", name]
        for name, share in zip(names, shares, strict=True)
    ]


def run():
    """Start the processes (one alone replaces this one). TERM or INT stops them warmly, QUIT
    coldly; when one ends the others are stopped, so that what started this command (supervisor,
    compose, honcho) starts them all again. Killed itself, it takes them with it."""
    lines = commands()
    if len(lines) == 1:
        os.execvp(lines[0][0], lines[0])  # noqa: S606
    children = [subprocess.Popen(line, preexec_fn=_die_with(os.getpid())) for line in lines]  # noqa: S603

    def stop(signum, frame):
        for child in children:
            if child.returncode is None:
                child.send_signal(signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, stop)
    pid, status = os.wait()
    first = next(child for child in children if child.pid == pid)
    first.returncode = os.waitstatus_to_exitcode(status)
    stop(signal.SIGTERM, None)
    for child in children:
        child.wait()
    return first.returncode if first.returncode >= 0 else 128 - first.returncode


def _die_with(parent):
    """Run in a child before it starts: killed (SIGKILL) as soon as `parent` dies, as a crash
    of the whole worker would be. Linux only; elsewhere a killed parent leaves them running."""

    def prepare():
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # it died before prctl
                os._exit(1)

    return prepare


def ping():
    """Whether every process of this host answers a ping through the broker."""
    names = [name.replace("%h", socket.gethostname()) for name in node_names()]
    return len(app.control.ping(destination=names, timeout=5)) == len(names)


if __name__ == "__main__":
    sys.exit(not ping() if sys.argv[1:] == ["ping"] else run())
