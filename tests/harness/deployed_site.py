"""A baked site set up as on a server, run by its own user (the deployment tests' fixtures)."""

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .baked_site import BIN, Site, bake, set_env_file
from .processes import wait_for

# The default bake's slug: the user its cron file names and its supervisor file suggests.
SITE_USER = "acme_mail"
# Nothing answers on port 1: a site publishing there leaves its mail queued for the sweeper.
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"


def site_user():
    """The system user the deployed site runs as, created on first use."""
    useradd = ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]

    def created():
        try:
            return pwd.getpwnam(SITE_USER)
        except KeyError:
            # Parallel tests may race for /etc/passwd: the loser tries again.
            subprocess.run([*useradd, SITE_USER], capture_output=True)
            return None

    return wait_for(created, 30, f"the system user {SITE_USER}")


def as_user(user):
    """The command prefix that runs a command as `user`, as cron and supervisord do."""
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


# This machine's Python lives in root's home, which no other user may enter
# (/root has mode 0700). So that the site's user can run it, commands run in a
# private mount namespace in which that folder is replaced by one anybody may
# pass through, holding only the way to Python. The rest of the machine sees
# no change.
PASSABLE_VIEW = """set -e
view=$1 closed=$2 inside=$3
shift 3
mkdir -p "$view/$inside"
mount --bind "$closed/$inside" "$view/$inside"
chmod 711 "$view"
mount --rbind "$view" "$closed"
exec "$@"
"""


def closed_folder(path):
    """The first folder on the way to `path` that other users may not pass through, or None."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


@contextlib.contextmanager
def passable_python():
    """The command prefix under which other users can run this virtualenv's Python."""
    base = Path(sys.base_prefix)
    closed = closed_folder(base)
    if closed is None:
        yield []
        return
    view = Path(tempfile.mkdtemp(prefix="python-view-"))
    inside = base.relative_to(closed).parts[0]
    yield ["unshare", "--mount", "--", "sh", "-c", PASSABLE_VIEW, "sh", view, closed, inside]
    shutil.rmtree(view)


class DeployedSite(Site):
    """A baked site owned by its own user, as on a server."""

    def __init__(self, path, user, python_view):
        super().__init__(path)
        self.user = user
        self.python_view = python_view

    def as_owner(self, *args):
        """The command line that runs `args` as the site's user."""
        return [*self.python_view, *as_user(self.user), *args]

    def run_as_owner(self, *args, env=None):
        """Run a command as the site's user, with the site's virtualenv first on PATH."""
        path = {"PATH": f"{self.path}/.venv/bin:/usr/bin:/bin"}
        return self.run(*self.as_owner(*args), env={**path, **(env or {})})


@contextlib.contextmanager
def deployed(postgres, rabbitmq, python_view):
    """A default bake set up as on a server: owned by its own user, `.venv` beside manage.py,
    PostgreSQL and RabbitMQ in .env, DEBUG off, migrated, static files collected."""
    user = site_user()
    # Outside pytest's temporary folders, which only root may enter.
    folder = Path(tempfile.mkdtemp(prefix="deployed-"))
    folder.chmod(0o755)
    site = DeployedSite(bake(folder).path, user, python_view)
    (site.path / ".venv").symlink_to(BIN.parent)
    set_env_file(site, DJANGO_DEBUG="false", DATABASE_URL=postgres, CELERY_BROKER_URL=rabbitmq)
    site.manage("migrate", "--verbosity", "0")
    site.manage("collectstatic", "--noinput", "--verbosity", "0")
    for path in [site.path, *site.path.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    yield site
    site.stop_all()
    shutil.rmtree(folder)
