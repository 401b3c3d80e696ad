"""A baked site follows the template's changes with cruft, keeping its own secrets."""

import shutil
import subprocess

from harness.baked_site import BIN, Site
from harness.bakery import TEMPLATE

GIT = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
SITE_README = "{{cookiecutter.__project_dir}}/README.md"
NEW_LINE = "A line the template gained after the site was baked."


def commit_all(site, message):
    site.run("git", "init", "--quiet")
    site.run("git", "add", ".")
    site.run("git", "commit", "--quiet", "-m", message)


def test_cruft_brings_template_changes_into_a_site_and_leaves_its_secrets_alone(tmp_path):
    template = Site(tmp_path / "template")
    template.env = GIT
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=TEMPLATE, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        (template.path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE / name, template.path / name)
    commit_all(template, "The template")

    Site(tmp_path).run(BIN / "cruft", "create", template.path, "--no-input", "--output-dir", "sites")
    site = Site(tmp_path / "sites" / "acme_mail")
    site.env = GIT
    commit_all(site, "Baked")
    secrets = (site.path / ".env").read_text()
    assert site.run(BIN / "cruft", "check").returncode == 0

    with (template.path / SITE_README).open("a") as readme:
        readme.write(f"\n{NEW_LINE}\n")
    template.run("git", "commit", "--quiet", "--all", "-m", "A change")

    check = site.run(BIN / "cruft", "check", check=False)
    assert check.returncode != 0
    assert "out of date" in check.stdout

    site.run(BIN / "cruft", "update", "--skip-apply-ask")

    assert (site.path / "README.md").read_text().endswith(f"\n{NEW_LINE}\n")
    assert (site.path / ".env").read_text() == secrets
    assert list(site.path.glob("*.rej")) == []
    site.run(BIN / "cruft", "check")
