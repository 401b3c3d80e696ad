"""Baking the template: every bake of the tests, the bench and `make demo` goes through bake().

Each bake reads a cookiecutter config of its own, as pytest-cookies gives its bakes
(https://pytest-cookies.readthedocs.io): a developer's ~/.cookiecutterrc or COOKIECUTTER_CONFIG
(other default_context answers, a replay_dir) changes nothing, and bakes running at the same
time write no shared replay file.
"""

import tempfile
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[2]
# The template's site folder, as it is before baking.
SITE_TEMPLATE = TEMPLATE / "{{cookiecutter.__project_dir}}"


def bake(output_dir, template=TEMPLATE, **answers):
    """Bake `template` into `output_dir` with its defaults and these answers; the site's folder."""
    with tempfile.TemporaryDirectory(prefix="cookiecutter-") as home:
        config = own_config(Path(home))
        site = cookiecutter(
            str(template),
            no_input=True,
            output_dir=str(output_dir),
            extra_context=answers,
            config_file=str(config),
        )
    return Path(site)


def own_config(home):
    """A cookiecutter config file in `home` that keeps cookiecutter's files there too.

    https://cookiecutter.readthedocs.io/en/stable/advanced/user_config.html
    """
    config = home / "config.yaml"
    folders = {"cookiecutters_dir": home / "cookiecutters", "replay_dir": home / "replay"}
    config.write_text(yaml.safe_dump({name: str(folder) for name, folder in folders.items()}))
    return config
