"""A site baked from this template for the benchmark (the harness's Site, with the bench's
scripts and the classic wiring), and its Celery workers."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import procfs
from harness import bakery
from harness.baked_site import SCRIPTS, Site
from harness.bakery import TEMPLATE
from queues import consumers

BENCH_SCRIPTS = Path(__file__).resolve().parent / "site"

# The classic recipe: post_office sends each mail at once (priority "now")
# through django-celery-email's backend, with the defaults of post_office,
# django-celery-email and Celery; only the broker and the SMTP server are the site's.
CLASSIC_SETTINGS = '''"""The classic post_office + django-celery-email wiring, written by the benchmark."""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, MAILERS, SITE_PACKAGE

# Without the site's apps: post_office sends as it does by itself. Their URLs go too (the
# worker's checks load the URLconf): this module is its own, empty, URLconf.
INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith(f"{SITE_PACKAGE}.")]
ROOT_URLCONF = "config.settings_classic"
urlpatterns = []

MAILERS = {
    "default": {"BACKEND": "post_office.EmailBackend"},
    "celery": {
        "BACKEND": "djcelery_email.backends.CeleryEmailBackend",
        "OPTIONS": {"using": "smtp"},
    },
    "smtp": MAILERS["transport"],
}
POST_OFFICE = {"DEFAULT_PRIORITY": "now", "DEFAULT_MAILER": "celery"}

del CELERY_EMAIL_CHUNK_SIZE, CELERY_EMAIL_MESSAGE_EXTRA_ATTRIBUTES, CELERY_EMAIL_TASK_CONFIG  # noqa: F821
del CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_BROKER_CONNECTION_TIMEOUT  # noqa: F821
del CELERY_TASK_PUBLISH_RETRY_POLICY, CELERY_TASK_DEFAULT_QUEUE  # noqa: F821
del CELERY_TASK_DEFAULT_EXCHANGE, CELERY_TASK_DEFAULT_ROUTING_KEY  # noqa: F821
del CELERY_CONTROL_EXCHANGE, CELERY_EVENT_EXCHANGE  # noqa: F821
del CELERY_TASK_QUEUE_MAX_PRIORITY, CELERY_TASK_QUEUES  # noqa: F821
del CELERY_TASK_ACKS_LATE, CELERY_TASK_REJECT_ON_WORKER_LOST  # noqa: F821
del CELERY_WORKER_PREFETCH_MULTIPLIER  # noqa: F821
'''
CLASSIC_WORKER = "celery -A config worker --pool prefork --concurrency 2 --loglevel INFO".split()
SITE_WORKER = ["deploy/bin/worker"]


class BakedSite(Site):
    @classmethod
    def bake(cls, output_dir, template=TEMPLATE):
        shutil.rmtree(output_dir, ignore_errors=True)
        site = cls(bakery.bake(output_dir, template))
        (site.path / "config" / "settings_classic.py").write_text(CLASSIC_SETTINGS)
        return site

    def environ(self, extra=None):
        """The site's environment, with the tests' site scripts importable (samples) and the
        bench's (statement_counts)."""
        return super().environ({"PYTHONPATH": f"{SCRIPTS}:{BENCH_SCRIPTS}", **(extra or {})})

    def python(self, *args, env=None):
        return self.pythons([args], env=env)[0]

    def pythons(self, arg_lists, env=None, timeout=900):
        """Run these Python command lines in the site at the same time; return what each printed."""
        processes = [
            subprocess.Popen(
                [sys.executable, *map(str, args)],
                cwd=self.path,
                env=self.environ(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in arg_lists
        ]
        outputs = []
        for args, process in zip(arg_lists, processes, strict=True):
            stdout, stderr = process.communicate(timeout=timeout)
            if process.returncode:
                raise RuntimeError(f"{' '.join(map(str, args))} exited {process.returncode}:\n{stderr}")
            outputs.append(stdout)
        return outputs

    def bench_scripts(self, name, arg_lists, env=None):
        """Run one of scripts/bench/site/ in the site, once per argument list, all at the same
        time; return what each printed, as JSON."""
        runs = self.pythons([(BENCH_SCRIPTS / name, *args) for args in arg_lists], env=env)
        return [json.loads(output or "null") for output in runs]

    def bench_script(self, name, *args, env=None):
        return self.bench_scripts(name, [args], env=env)[0]

    def popen(self, args, env=None, log=None):
        return subprocess.Popen(
            list(map(str, args)),
            cwd=self.path,
            env=self.environ(env),
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def template_at(ref, into):
    """The template as git has it at `ref`, written to `into`; None where git cannot give it
    (a shallow clone, a copy without .git)."""
    shutil.rmtree(into, ignore_errors=True)
    archive = subprocess.run(["git", "-C", str(TEMPLATE), "archive", ref], capture_output=True)
    if archive.returncode:
        return None
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


class Workers:
    """Celery workers of a site, started together; `with` stops them."""

    def __init__(self, site, command, queue, count=1, env=None, name="bench", consumers=1):
        self.site = site
        self.queue = queue
        self.consumers = count * consumers
        self.logs = [site.path / "log" / f"{name}-worker-{n}.log" for n in range(count)]
        self.processes = []
        for n, log in enumerate(self.logs):
            with open(log, "wb") as output:
                self.processes.append(
                    site.popen(command, env={**(env or {}), "WORKER_NAME": f"{name}{n}"}, log=output)
                )

    def __enter__(self):
        """Wait until every worker consumes from the queue."""
        deadline = time.monotonic() + 60
        while consumers(self.site.env["CELERY_BROKER_URL"], self.queue) < self.consumers:
            for process, log in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"a worker did not start; see {log}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.stop()

    def check_running(self):
        """Raise if a worker has exited (something else on the machine may have stopped it)."""
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited during the run, code {process.returncode}; see {log}")

    def first_worker_pid(self):
        """The first Celery worker: the first command, or its first child where each command
        starts several (deploy/bin/worker, a process per core)."""
        pid = self.processes[0].pid
        if self.consumers == len(self.processes):
            return pid
        return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])

    def exited(self):
        return any(process.poll() is not None for process in self.processes)

    @property
    def groups(self):
        return {process.pid for process in self.processes}

    def peak_rss_mb(self):
        """The largest peak resident size of any of their processes (pool children too), in MB."""
        return procfs.group_peak_rss_mb(self.groups)

    def cpu_seconds(self):
        return procfs.group_cpu_seconds(self.groups)

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
