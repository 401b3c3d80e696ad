"""What /proc tells about processes and the machine: peak memory, CPU time, how busy the cores were."""

import os
import resource
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def group_members(groups):
    """(pid, stat fields after the command name) of every process in these process groups."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may contain spaces.
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) in groups:
                yield int(entry.name), fields


def group_peak_rss_mb(groups):
    """The largest peak resident size (VmHWM) of any process in these groups, in MB."""
    return max((peak_rss_mb(pid) for pid, _ in group_members(groups)), default=0.0)


def peak_rss_mb(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kilobytes / 1024


def group_cpu_seconds(groups):
    """CPU seconds used so far by the processes of these groups and their reaped children."""
    return sum(sum(map(int, fields[11:15])) / TICKS for _, fields in group_members(groups))


def cpu_seconds(pid):
    """CPU seconds used so far by one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def self_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds():
    """CPU seconds used by the child processes this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class MachineLoad:
    """How busy the cores were since creation, as a share of their time; and how much of
    that time some process waited for a core (Linux's CPU pressure), when the kernel tells."""

    def __init__(self):
        self.start = self._read()
        self.started = time.monotonic()
        self.start_stalled = self._stalled()

    @staticmethod
    def _read():
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = ticks[3] + ticks[4]
        return sum(ticks) - idle, sum(ticks)

    @staticmethod
    def _stalled():
        """Microseconds during which some process waited for a core, or None."""
        try:
            some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        except OSError:
            return None
        return int(some.rsplit("total=", 1)[1])

    def busy(self):
        busy, total = self._read()
        return (busy - self.start[0]) / max(1, total - self.start[1])

    def waiting_for_cpu(self):
        stalled = self._stalled()
        if stalled is None or self.start_stalled is None:
            return None
        return (stalled - self.start_stalled) / 1e6 / max(1e-9, time.monotonic() - self.started)
