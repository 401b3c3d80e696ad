"""`make demo`: bake a site into build/demo, send sample mails through it, show where each landed.

Runs on a machine with nothing but Python: SQLite, kombu's filesystem
transport as the broker (or CELERY_BROKER_URL if set), a real Celery worker
and an SMTP server in this process that catches the mail.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
# The tests' SMTP catcher and the scripts they run inside a site.
sys.path.insert(0, str(TEMPLATE / "tests"))
from harness import bakery  # noqa: E402
from harness.smtp_catcher import SmtpCatcher  # noqa: E402

SITE_SCRIPTS = TEMPLATE / "tests" / "site"
BUILD = TEMPLATE / "build" / "demo"


def landed(message):
    if message is None:
        return "-"
    parts = "+".join(part.get_content_type() for part in message.walk() if not part.is_multipart())
    return f"catcher: {message['To']}, {parts}"


def main():
    shutil.rmtree(BUILD, ignore_errors=True)
    site = bakery.bake(BUILD)
    with SmtpCatcher() as catcher:
        rows = send_samples(site, catcher)
    received = {message["Message-ID"]: message for message in catcher.messages}
    table = [{**row, "landed": landed(received.get(row["message_id"]))} for row in rows]
    print_table(table, ("id", "to", "subject", "status", "failed attempts", "landed"))
    delivered = sum(row["status"] == "sent" and row["landed"] != "-" for row in table)
    print(f"\n{delivered} of {len(table)} mails sent and caught. The site is in {site}.")
    return 0 if delivered == len(table) else 1


def send_samples(site, catcher):
    """Send the samples with a worker running; return the site's report once all are done."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "EMAIL_URL": catcher.url,
        "PYTHONPATH": str(SITE_SCRIPTS),
    }

    def run(*args):
        return subprocess.run(
            [sys.executable, *args], cwd=site, env=env, check=True, capture_output=True, text=True
        ).stdout

    run("manage.py", "migrate", "--verbosity", "0")
    broker = os.environ.get("CELERY_BROKER_URL", "kombu's filesystem transport")
    print(f"Baked {site}; broker: {broker}; starting a worker (log in log/worker.log)")
    with open(site / "log" / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            ["deploy/bin/worker"], cwd=site, env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        ids = json.loads(run(TEMPLATE / "scripts" / "demo_send.py"))
        print(f"Sent {len(ids)} mails; the sweeper runs every second until all are delivered.")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = json.loads(run(SITE_SCRIPTS / "report.py"))
            if all(row["status"] in ("sent", "failed") for row in rows):
                break
            run("manage.py", "send_queued_mail")
            time.sleep(1)
        return rows
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()


def print_table(rows, columns):
    widths = {name: max(len(name), *(len(str(row[name])) for row in rows)) for name in columns}
    print()
    print("  ".join(name.ljust(widths[name]) for name in columns).rstrip())
    print("  ".join("-" * widths[name] for name in columns))
    for row in rows:
        print("  ".join(str(row[name]).ljust(widths[name]) for name in columns).rstrip())


if __name__ == "__main__":
    sys.exit(main())
