"""The site's requirements are locked, transitive ones included, with hashes, and the locks
agree with what the site declares."""

import re
import shutil
import subprocess

import pytest
from harness.baked_site import BIN
from harness.bakery import SITE_TEMPLATE
from harness.needs import cannot_run
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}
LOCKED = re.compile(r"^([A-Za-z0-9_.\[\],-]+)==([^ \\;]+)", re.MULTILINE)


def declared(name):
    """The requirements a .in file names itself (not the files it includes)."""
    lines = (SITE_TEMPLATE / name).read_text().splitlines()
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def locked(name):
    """{package: version} of a lock, and each package's text (with its hashes)."""
    text = (SITE_TEMPLATE / name).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    versions = {}
    for entry in entries:
        package, version = LOCKED.match(entry).groups()
        versions[canonicalize_name(package.split("[")[0])] = (version, entry)
    return versions


@pytest.mark.parametrize("declaration", LOCKS)
def test_every_declared_requirement_is_locked_at_a_version_it_allows(declaration):
    lock = locked(LOCKS[declaration])
    for requirement in declared(declaration):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is not in {LOCKS[declaration]}: run make lock"
        assert requirement.specifier.contains(lock[name][0]), (
            f"{LOCKS[declaration]} has {name}=={lock[name][0]}, {declaration} asks {requirement}"
        )


@pytest.mark.parametrize("lock", LOCKS.values())
def test_every_locked_package_has_its_hashes(lock):
    unhashed = [name for name, (_, entry) in locked(lock).items() if "--hash=sha256:" not in entry]
    assert unhashed == []


def test_the_dev_lock_holds_the_sites_requirements_at_the_same_versions():
    site, dev = locked("requirements.txt"), locked("requirements-dev.txt")

    assert {name: dev[name][0] for name in site} == {name: version for name, (version, _) in site.items()}


def test_locking_again_changes_nothing(tmp_path):
    """What `make lock` would write, starting from the committed locks (it keeps their pins)."""
    for declaration, lock in LOCKS.items():
        shutil.copy(SITE_TEMPLATE / declaration, tmp_path)
        shutil.copy(SITE_TEMPLATE / lock, tmp_path)
    makefile = (SITE_TEMPLATE / "Makefile").read_text()
    options = re.search(r"^LOCK = \$\(BIN\)/uv pip compile (.*)$", makefile, re.MULTILINE)[1].split()
    for declaration, lock in LOCKS.items():
        result = subprocess.run(
            [BIN / "uv", "pip", "compile", *options, declaration, "-o", lock],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        if result.returncode and "error sending request" in result.stderr:
            cannot_run(f"uv could not reach the package index: {result.stderr.strip()}", "network")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / lock).read_text() == (SITE_TEMPLATE / lock).read_text(), f"{lock} is stale"
