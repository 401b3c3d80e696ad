"""Run a GitHub Actions workflow's jobs here, step by step, as a runner would.

`run:` steps run with bash -eo pipefail in a fresh checkout, with the workflow's, the job's
and the step's `env:` and what earlier steps wrote to $GITHUB_ENV. `uses:` steps become
their equivalent: actions/checkout is the fresh checkout, actions/setup-python a virtualenv
of the Python version the step names. Services are the machine's PostgreSQL and RabbitMQ,
given the users, passwords, databases and virtual hosts the job's `services:` declare.
"""

import contextlib
import fcntl
import os
import signal
import subprocess
from pathlib import Path

import psycopg
import yaml

from .services import POSTGRES, rabbitmqctl

# The ports the machine's services answer on.
MACHINE_PORTS = {"postgres": 5432, "rabbitmq": 5672}


class StepFailed(AssertionError):
    pass


def python(version):
    """The path of a Python of `version` on this machine (PATH, then pyenv's versions)."""
    for candidate in [
        f"python{version}",
        *sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob(f"{version}*/bin/python3")),
    ]:
        found = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.executable)"], capture_output=True, text=True
        )
        if found.returncode == 0:
            return found.stdout.strip()
    raise StepFailed(f"no Python {version} on this machine for actions/setup-python")


@contextlib.contextmanager
def machine_service(name, service):
    """The machine's PostgreSQL or RabbitMQ, set up as the service container would be."""
    kind = service["image"].split(":")[0]
    env = service.get("env", {})
    ports = [port.split(":") for port in service.get("ports", [])]
    if kind not in MACHINE_PORTS or any(int(host) != MACHINE_PORTS[kind] for host, _ in ports):
        raise StepFailed(f"service {name}: no machine service stands in for {service['image']} {ports}")
    if kind == "postgres":
        user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
        drop_postgres_user(user, database)  # a run killed before its cleanup left them
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE \"{user}\" LOGIN CREATEDB PASSWORD '{password}'")
            admin.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
        try:
            yield
        finally:
            drop_postgres_user(user, database)
    else:
        user, password = env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]
        vhost = env.get("RABBITMQ_DEFAULT_VHOST", "/")
        if user in rabbitmqctl("list_users", "--no-table-headers").split():  # left by a killed run
            rabbitmqctl("delete_user", user)
        if vhost != "/" and vhost in rabbitmqctl("list_vhosts", "--no-table-headers").split():
            rabbitmqctl("delete_vhost", vhost)
        rabbitmqctl("add_user", user, password)
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        try:
            yield
        finally:
            rabbitmqctl("delete_vhost", vhost)
            rabbitmqctl("delete_user", user)


def drop_postgres_user(user, database):
    """The user, its database and the tests' copy of it, if there."""
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        for stale in (database, f"test_{database}"):
            admin.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{user}"')


@contextlib.contextmanager
def machine_services_lock():
    """One job at a time on this machine (other test runs too): they share the users' names."""
    with open("/tmp/workflow-services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_job(workflow_file, job_name, repository, workdir, log=print):
    """Run one job of the workflow on a fresh checkout of `repository` (a git repository).
    Raises StepFailed naming the step, with its output, when a step fails."""
    workflow = yaml.safe_load(Path(workflow_file).read_text())
    job = workflow["jobs"][job_name]
    checkout = workdir / "checkout"
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(checkout),
        "RUNNER_TEMP": str(workdir),
        **workflow.get("env", {}),
        **job.get("env", {}),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    github_env = workdir / "github_env"
    github_env.touch()
    sessions = []
    with contextlib.ExitStack() as services:
        services.enter_context(machine_services_lock())
        for name, service in job.get("services", {}).items():
            services.enter_context(machine_service(name, service))
        try:
            for number, step in enumerate(job["steps"], 1):
                name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
                log(f"step {number}: {name}")
                if "uses" in step:
                    environment = use(step, repository, checkout, workdir, environment)
                    continue
                sessions.append(run_step(step, name, checkout, environment, github_env, job))
        finally:
            for process in sessions:  # what steps left running in the background, as a runner does
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def use(step, repository, checkout, workdir, environment):
    action = step["uses"].split("@")[0]
    if action == "actions/checkout":
        subprocess.run(["git", "clone", "--quiet", str(repository), str(checkout)], check=True)
        return environment
    if action == "actions/setup-python":
        venv = workdir / "python"
        subprocess.run([python(step["with"]["python-version"]), "-m", "venv", str(venv)], check=True)
        return {**environment, "PATH": f"{venv / 'bin'}:{environment['PATH']}", "pythonLocation": str(venv)}
    raise StepFailed(f"no stand-in for {step['uses']}")


def run_step(step, name, checkout, environment, github_env, job):
    """Run a `run:` step; return its process (its session may leave children running)."""
    added = dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
    env = {**environment, **added, **step.get("env", {}), "GITHUB_ENV": str(github_env)}
    script = checkout.parent / "step.sh"
    script.write_text(step["run"])
    # Output to a file, not a pipe: what a step leaves running in the background keeps it open.
    log = checkout.parent / "step.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=checkout / step.get("working-directory", "."),
            env={key: str(value) for key, value in env.items()},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        process.wait(timeout=60 * job.get("timeout-minutes", 15))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise StepFailed(f"step {name!r} timed out:\n{log.read_text()}") from None
    if process.returncode:
        raise StepFailed(f"step {name!r} exited {process.returncode}:\n{log.read_text()}")
    return process
