"""Where a worker's CPU goes: py-spy samples the thread that holds the GIL (a thread waiting
for the database or the mail server does not) while the worker works, pausing it for each
sample so that every stack is read whole, and writes a flame graph (SVG) and the raw
stacks, which `stages` sorts into the stages of a mail."""

import contextlib
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 100  # samples a second
READ = "read the task's mails, the suppression list"
# What the frame right under SenderBackend.deliver (or send_taken, the part of it after
# the take) does for the mail.
UNDER_DELIVER = {
    "take": "take (state.take)",
    "get": READ,  # the worker before: one mail read after its take
    "outgoing": "build the message",
    "hold_back": "build the message",
    "add_headers": "build the message",
    "transport": "SMTP",
    "send": "SMTP",
    "smtp_refused": "SMTP",
    "provider_ids": "SMTP",
    "acquire": "the rate limit (pace.py)",
    "accepted": "the rate limit (pace.py)",
    "sent": "status writes",
    "run": "status writes",  # group_commit.run: "sent", committed with other threads' writes
    "attempt_failed": "status writes",
    "failed": "status writes",
    "after_error": "status writes",
    "withheld": "status writes",
    "hold": "status writes",
}
# Context managers: under deliver the /metrics count, under send_taken the connection pool.
ENTERED = {"deliver": "status writes", "send_taken": "SMTP"}
# The sender's module: worker.py in the template before (BEFORE in scenarios.py).
SENDER = ("delivery/sender.py", "delivery/worker.py")
ORDER = [
    "Celery and kombu: receive, ack",
    "task decode (django-celery-email)",
    READ,
    *dict.fromkeys(UNDER_DELIVER.values()),
    "other",
]


@contextlib.contextmanager
def sampled(pid, out):
    """py-spy on `pid` for the length of the block: `out`.svg and `out`.txt."""
    common = [PY_SPY, "record", "--pid", str(pid), "--rate", str(RATE), "--threads", "--gil"]
    spies = [
        subprocess.Popen([*common, "--format", form, "-o", f"{out}.{suffix}"], stdout=subprocess.DEVNULL)
        for form, suffix in (("flamegraph", "svg"), ("raw", "txt"))
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        for spy in spies:
            spy.wait(60)


def stages(raw_path):
    """{stage: its share of the worker's samples}, from py-spy's raw stacks."""
    counts = Counter()
    for line in Path(raw_path).read_text().split("\n"):  # not splitlines(): frames hold \x1c
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        counts[stage_of(stack.split(";"))] += int(samples)
    total = sum(counts.values()) or 1
    return {stage: counts[stage] / total for stage in ORDER if counts[stage]}


def stage_of(frames):
    # A frame reads "Class.function (path/file.py:line)"; only the function counts.
    names = [frame.split(" (", 1)[0].rsplit(".", 1)[-1] for frame in frames]
    if "prepare" in names and any(sender in frame for frame in frames for sender in SENDER):
        return READ
    inside = [
        index
        for index, (name, frame) in enumerate(zip(names, frames, strict=True))
        if name in ENTERED and any(sender in frame for sender in SENDER)
    ]
    if inside:
        index = inside[-1]
        below = names[index + 1] if index + 1 < len(names) else ""
        if below in ("__enter__", "__exit__"):
            return ENTERED[names[index]]
        return UNDER_DELIVER.get(below, "other")
    if any("djcelery_email" in frame for frame in frames):
        return "task decode (django-celery-email)"
    if any(part in frame for frame in frames for part in ("celery/", "kombu/", "amqp/")):
        return "Celery and kombu: receive, ack"
    return "other"
