"""A developer's cookiecutter config changes nothing the tests, the bench or `make demo` bake."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
# A developer's config: other answers by default, and a replay folder of their own.
OTHER_DEFAULTS = {
    "project_name": "Other Mail",
    "author_name": "Someone Else",
    "domain_name": "other.example.org",
    "time_zone": "Europe/Paris",
    "email_service": "postmark",
}
# How a developer's config reaches cookiecutter: its default place, or the variable naming one.
WAYS = {
    "~/.cookiecutterrc": lambda config: {},
    "COOKIECUTTER_CONFIG": lambda config: {"COOKIECUTTER_CONFIG": str(config)},
}


def bake_as(home, output_dir, env):
    """Bake with harness.bakery in a Python of its own, whose HOME is `home` (cookiecutter
    reads ~ when it is imported); the site's folder."""
    environ = {key: value for key, value in os.environ.items() if key != "COOKIECUTTER_CONFIG"}
    script = "import sys; from harness.bakery import bake; print(bake(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", script, str(output_dir)],
        env={**environ, "HOME": str(home), "PYTHONPATH": str(TESTS), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(result.stdout.splitlines()[-1])


def files_of(site):
    """Every file of a baked site by its path, the secrets the hook draws for .env masked."""
    files = {path.relative_to(site.parent): path.read_bytes() for path in site.rglob("*") if path.is_file()}
    drawn = {line for line in (site / ".env.example").read_text().splitlines() if line.endswith("=")}
    env_lines = (site / ".env").read_text().splitlines()
    files[Path(site.name, ".env")] = "\n".join(
        line.split("=", 1)[0] + "=<drawn>" if line.split("=", 1)[0] + "=" in drawn else line
        for line in env_lines
    ).encode()
    return files


@pytest.mark.parametrize("way", WAYS.values(), ids=WAYS.keys())
def test_a_bake_is_the_same_whatever_the_developers_cookiecutter_config_says(tmp_path, way):
    clean_home, home = tmp_path / "clean-home", tmp_path / "home"
    clean_home.mkdir()
    replay = home / "replay"
    replay.mkdir(parents=True)
    config = home / ".cookiecutterrc"
    config.write_text(yaml.safe_dump({"default_context": OTHER_DEFAULTS, "replay_dir": str(replay)}))

    expected = files_of(bake_as(clean_home, tmp_path / "without", {}))
    baked = files_of(bake_as(home, tmp_path / "with", way(config)))

    differing = sorted(str(path) for path in expected.keys() ^ baked.keys())
    differing += sorted(str(path) for path in expected.keys() & baked.keys() if expected[path] != baked[path])
    assert differing == [], "the developer's config changed the bake"
    assert list(replay.iterdir()) == [], "the bake wrote the developer's replay folder"
    assert list(clean_home.iterdir()) == [], "the bake wrote into HOME"
