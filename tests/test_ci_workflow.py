"""The baked GitHub Actions workflow, every step run for real for each set of answers the
template tests, in a fresh checkout with the machine's services standing in for the job's."""

import shutil
import subprocess

import pytest
import yaml
from harness.baked_site import bake
from harness.needs import require_root, require_service
from harness.workflow import StepFailed, run_job
from test_bake import ANSWERS

WORKFLOW = ".github/workflows/ci.yml"


def repository_of(site, folder):
    """The baked site as its author pushes it: a git repository (.env stays out: .gitignore)."""
    shutil.copytree(site.path, folder)
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qm", "baked"],
    ):
        subprocess.run(["git", *command], cwd=folder, check=True)
    return folder


# One at a time: every run gives the machine's services the same users and databases.
@pytest.mark.xdist_group("ci-services")
@pytest.mark.services
@pytest.mark.root
@pytest.mark.parametrize("answers", ANSWERS.values(), ids=ANSWERS.keys())
def test_every_step_of_the_baked_workflow_passes(tmp_path, answers):
    require_service("PostgreSQL", 5432)
    require_service("RabbitMQ", 5672)
    require_root("rabbitmqctl gives the broker the workflow's user and virtual host")
    site = bake(tmp_path / "bake", **answers)
    repository = repository_of(site, tmp_path / "repository")
    steps = []

    try:
        run_job(site.path / WORKFLOW, "test", repository, tmp_path / "runner", log=steps.append)
    except StepFailed as failure:
        pytest.fail(str(failure))
    job = yaml.safe_load((site.path / WORKFLOW).read_text())["jobs"]["test"]
    assert len(steps) == len(job["steps"]), steps
    assert steps[-1].endswith("A test mail through RabbitMQ, a worker and an SMTP server")
