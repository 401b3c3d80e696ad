"""Finish the baked site: write .env with fresh secrets and say what to do next."""

import os
import re
import secrets
from pathlib import Path

SECRETS = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "RABBITMQ_PASSWORD": lambda: secrets.token_urlsafe(24),
    "RABBITMQ_ERLANG_COOKIE": lambda: secrets.token_hex(32),  # Erlang takes letters and digits
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(24),
    "POSTGRES_SITE_PASSWORD": lambda: secrets.token_urlsafe(24),
    "FLOWER_PASSWORD": lambda: secrets.token_urlsafe(24),
    "GRAFANA_PASSWORD": lambda: secrets.token_urlsafe(24),
    "RABBITMQ_FLOWER_PASSWORD": lambda: secrets.token_urlsafe(24),
    "HEALTH_TOKEN": lambda: secrets.token_urlsafe(24),
    # HTTP basic auth of the email services' webhooks: "user:password".
    "ANYMAIL_WEBHOOK_SECRET": lambda: f"webhook-{secrets.token_hex(4)}:{secrets.token_urlsafe(24)}",
}


def write_env(site):
    """Copy .env.example to .env, giving every empty secret a new random value."""
    text = (site / ".env.example").read_text()
    for name, make in SECRETS.items():
        text, found = re.subn(rf"(?m)^{name}=$", f"{name}={make()}", text)
        assert found == 1, f".env.example must have exactly one empty {name}= line"
    # Readable by its owner only from the moment it exists (O_EXCL: never an older file).
    descriptor = os.open(site / ".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as env:
        env.write(text)


site = Path.cwd()
write_env(site)
print(
    f"""
Baked {site.name} in {site}. Next:

    cd {site}
    make install         # a virtualenv with Python >= 3.12 and the pinned packages
    make run             # web, worker, sweeper and a mail catcher on this machine
    make test

.env holds this site's secrets; it is in .gitignore. The README and its docs/ pages
explain the mail path and how to deploy with compose or supervisor and cron.
"""
)
