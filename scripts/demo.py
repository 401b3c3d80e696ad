"""`make demo`: bake a site into build/demo, send sample mails through it, show where each landed.

Runs on a machine with nothing but Python: SQLite, kombu's filesystem
transport as the broker (or CELERY_BROKER_URL if set), a real Celery worker
and an SMTP server in this process that catches the mail.
"""

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
# The tests' harness: baking, the baked site, the SMTP catcher.
sys.path.insert(0, str(TEMPLATE / "tests"))
from harness.baked_site import SCRIPTS, bake  # noqa: E402
from harness.smtp_catcher import SmtpCatcher  # noqa: E402

BUILD = TEMPLATE / "build" / "demo"


def landed(message):
    if message is None:
        return "-"
    parts = "+".join(part.get_content_type() for part in message.walk() if not part.is_multipart())
    return f"catcher: {message['To']}, {parts}"


def main():
    shutil.rmtree(BUILD, ignore_errors=True)
    site = bake(BUILD)
    with SmtpCatcher() as catcher:
        rows = send_samples(site, catcher)
    received = {message["Message-ID"]: message for message in catcher.messages}
    table = [{**row, "landed": landed(received.get(row["message_id"]))} for row in rows]
    print_table(table, ("id", "to", "subject", "status", "failed attempts", "landed"))
    delivered = sum(row["status"] == "sent" and row["landed"] != "-" for row in table)
    print(f"\n{delivered} of {len(table)} mails sent and caught. The site is in {site.path}.")
    return 0 if delivered == len(table) else 1


def send_samples(site, catcher):
    """Send the samples with a worker running; return the site's report once all are done."""
    site.env = {"EMAIL_URL": catcher.url, "PYTHONPATH": str(SCRIPTS)}
    site.manage("migrate", "--verbosity", "0")
    broker = os.environ.get("CELERY_BROKER_URL", "kombu's filesystem transport")
    print(f"Baked {site.path}; broker: {broker}; starting a worker (log in log/worker.log)")
    worker = site.start("deploy/bin/worker", log="log/worker.log")
    try:
        ids = json.loads(site.run(sys.executable, TEMPLATE / "scripts" / "demo_send.py").stdout)
        print(f"Sent {len(ids)} mails; the sweeper runs every second until all are delivered.")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = site.script("report.py")
            if all(row["status"] in ("sent", "failed") for row in rows):
                break
            site.manage("send_queued_mail")
            time.sleep(1)
        return rows
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # a warm stop, not the tests' kill -9
        worker.wait()
        site.stop(worker)


def print_table(rows, columns):
    widths = {name: max(len(name), *(len(str(row[name])) for row in rows)) for name in columns}
    print()
    print("  ".join(name.ljust(widths[name]) for name in columns).rstrip())
    print("  ".join("-" * widths[name] for name in columns))
    for row in rows:
        print("  ".join(str(row[name]).ljust(widths[name]) for name in columns).rstrip())


if __name__ == "__main__":
    sys.exit(main())
