"""What every settings module starts from: the site's folder, its package and the environment,
with a `.env` file beside manage.py filling in what the environment leaves unset."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
SITE_PACKAGE = "{{ cookiecutter.project_slug }}"

env = environ.Env()
env.read_env(BASE_DIR / ".env")
