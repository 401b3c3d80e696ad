"""A baked site's developer tooling: its pre-commit hooks and its GitHub Actions workflow."""

import importlib.metadata

import yaml
from harness.baked_site import BIN, bake

# What each hook runs, from the hook repositories' .pre-commit-hooks.yaml (read by
# hand: this machine cannot clone them from GitHub). The test runs the same
# commands, installed from PyPI at the versions of the pinned revs.
HOOKS = {
    "trailing-whitespace": {"entry": "trailing-whitespace-fixer", "types": ["text"]},
    "end-of-file-fixer": {"entry": "end-of-file-fixer", "types": ["text"]},
    "check-yaml": {"entry": "check-yaml", "types": ["yaml"]},
    "check-toml": {"entry": "check-toml", "types": ["toml"]},
    "check-added-large-files": {"entry": "check-added-large-files"},
    "detect-private-key": {"entry": "detect-private-key", "types": ["text"]},
    "django-upgrade": {"entry": "django-upgrade", "types": ["python"]},
    "ruff-check": {"entry": "ruff check --force-exclude", "types_or": ["python", "pyi"]},
    "ruff-format": {"entry": "ruff format --force-exclude", "types_or": ["python", "pyi"]},
}
PINNED_AS = {
    "https://github.com/pre-commit/pre-commit-hooks": "v" + importlib.metadata.version("pre-commit-hooks"),
    "https://github.com/adamchainz/django-upgrade": importlib.metadata.version("django-upgrade"),
    "https://github.com/astral-sh/ruff-pre-commit": "v" + importlib.metadata.version("ruff"),
}


def test_a_fresh_bake_passes_its_own_pre_commit_hooks(tmp_path):
    site = bake(tmp_path / "bake")
    config = site.path / ".pre-commit-config.yaml"
    site.run(BIN / "pre-commit", "validate-config", config)
    repos = yaml.safe_load(config.read_text())["repos"]
    assert {repo["repo"]: repo["rev"] for repo in repos} == PINNED_AS
    hooks = [hook for repo in repos for hook in repo["hooks"]]
    assert {hook["id"]: hook.get("args") for hook in hooks}["django-upgrade"] == [
        "--target-version",
        "6.1",
    ]

    # The same hooks as local commands, run by pre-commit on every file git would commit.
    local = [{"name": hook["id"], "language": "system", **hook, **HOOKS[hook["id"]]} for hook in hooks]
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": local}]}))
    site.run("git", "init", "--quiet")
    site.run("git", "add", ".")
    result = site.run(
        BIN / "pre-commit",
        *("run", "--all-files", "--config", tmp_path / "local.yaml"),
        env={"PRE_COMMIT_HOME": str(tmp_path / "cache")},
        check=False,
    )

    assert result.returncode == 0, result.stdout
    assert result.stdout.count("Passed") == len(hooks), result.stdout


def test_the_ci_workflow_is_valid_and_makes_its_own_secret_key(tmp_path):
    site = bake(tmp_path)
    workflow = site.path / ".github" / "workflows" / "ci.yml"

    site.run(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow)

    text = workflow.read_text()
    assert "${{ github.workflow }}-${{ github.ref }}" in text, "GitHub's expressions were rendered away"
    job = yaml.safe_load(text)["jobs"]["test"]
    images = {name: service["image"] for name, service in job["services"].items()}
    assert images == {"postgres": "postgres:17.6", "rabbitmq": "rabbitmq:4.3-management"}
    assert all("--health-cmd" in service["options"] for service in job["services"].values())
    [python] = [step["with"] for step in job["steps"] if "setup-python" in step.get("uses", "")]
    assert python["python-version"] == "3.13"
    script = "\n".join(step.get("run", "") for step in job["steps"])
    for command in ("ruff check", "check --deploy --fail-level WARNING", "pytest", "send_test_mail"):
        assert command in script
    assert 'echo "DJANGO_SECRET_KEY=$key" >> "$GITHUB_ENV"' in script
