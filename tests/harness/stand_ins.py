"""Stand-ins for the official images a baked site uses, made here from Debian trixie (there is
no registry to pull from) and tagged with the very names its Dockerfile's FROM and its compose
files' image: lines use, so those files run unchanged. Each image carries a label with the hash
of what made it; an image whose label matches is not built again."""

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .compose_site import COMPOSE

IMAGES = Path(__file__).parents[1] / "images"
BASE = "localhost/debian:trixie"
LABEL = "template-tests.recipe"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "trixie"]
# Keeps packages' install scripts from starting services during builds, as Debian's images do.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
# Files from this machine that go into a stand-in: pip reaches the index through a proxy the host trusts.
HOST_FILES = {"python": {"ca-certificates.crt": Path("/etc/ssl/certs/ca-certificates.crt")}}


def digest(*parts):
    return hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:16]


def mirror():
    """The URI of the Debian mirror apt uses here (not the security archive)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(re.findall(r"(?m)^(\w[\w-]*):\s*(.+)$", stanza))
            if "URIs" in fields and "security" not in fields.get("Suites", ""):
                return fields["URIs"].split()[0]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match and "security" not in match[2]:
            return match[1]
    raise RuntimeError("found no Debian mirror in apt's sources")


def build_base(engine, workdir):
    """localhost/debian:trixie by debootstrap from apt's mirror: (its image ID, "built" or "cached")."""
    key = digest(DEBOOTSTRAP, POLICY_RC_D)
    if built := engine.image_label(BASE, LABEL) != key:
        rootfs = workdir / "rootfs"
        subprocess.run([*DEBOOTSTRAP, rootfs, mirror()], check=True, capture_output=True, timeout=900)
        (rootfs / "usr/sbin/policy-rc.d").write_text(POLICY_RC_D)
        (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
        for package in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            package.unlink()
        # apt's lists stay, so that the stand-ins install packages without downloading them again.
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [engine.cli, "import", f"--change=LABEL {LABEL}={key}", "-", BASE],
            stdin=tar.stdout,
            env=engine.env,
            capture_output=True,
            timeout=300,
        )
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
        shutil.rmtree(rootfs)
    return engine.inspect(BASE)["Id"], "built" if built else "cached"


def full_name(image):
    """The name an engine stores `image` under: python:3.13-slim is docker.io/library/python:3.13-slim."""
    first = image.split("/")[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"


def official_images(site):
    """The images a baked site pulls: its Dockerfile's FROM lines and its compose files' image:
    lines (of services that are not built)."""
    dockerfile = (site.path / "Dockerfile").read_text()
    stages = set(re.findall(r"(?im)^FROM\s.*\sAS\s+(\S+)", dockerfile))
    images = set(re.findall(r"(?im)^FROM\s+(?:--\S+\s+)*(\S+)", dockerfile)) - stages
    files = ["--file", "compose.yaml", "--file", "compose.override.yaml"]
    config = json.loads(site.run(COMPOSE, *files, "config", "--format", "json").stdout)
    images |= {service["image"] for service in config["services"].values() if "build" not in service}
    return images


def stand_in_folder(image):
    """tests/images/<name> for an image name such as axllent/mailpit:v1.27."""
    folder = IMAGES / image.split(":")[0].split("/")[-1]
    assert folder.is_dir(), f"no stand-in for {image}: add one under {IMAGES}"
    return folder


def build_stand_ins(engine, site, workdir):
    """Build every stand-in the site needs, or find it cached: {folder name: (image, "built" or
    "cached")}."""
    with lock(Path(tempfile.gettempdir()) / "template-tests-images.lock"):
        base, base_made = build_base(engine, workdir)
        by_folder = {}
        for image in official_images(site):
            by_folder.setdefault(stand_in_folder(image), []).append(full_name(image))
        with concurrent.futures.ThreadPoolExecutor(len(by_folder)) as pool:
            done = pool.map(lambda item: build_stand_in(engine, base, *item, workdir), by_folder.items())
            made = {
                folder.name: (tags[0], how)
                for (folder, tags), how in zip(by_folder.items(), done, strict=True)
            }
    return {"debian": (BASE, base_made), **made}


def build_stand_in(engine, base, folder, tags, workdir):
    context = workdir / folder.name
    shutil.copytree(folder, context, dirs_exist_ok=True)
    for name, source in HOST_FILES.get(folder.name, {}).items():
        shutil.copyfile(source, context / name)
    files = sorted(path for path in context.rglob("*") if path.is_file())
    key = digest(base, *[(path.relative_to(context), path.read_bytes()) for path in files])
    if all(engine.image_label(tag, LABEL) == key for tag in tags):
        return "cached"
    engine.build(context, tags, {LABEL: key})
    return "built"


@contextlib.contextmanager
def lock(path):
    """One build at a time on this machine, whichever test run asks."""
    with path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield
