"""Running commands and waiting for something to happen: one way each for the tests, the bench
and the demo."""

import subprocess
import time


def run(command, check=True, timeout=300, **options):
    """Run `command` to its end and return its result, output as text; fail with its output if it
    exits non-zero and `check`."""
    command = [str(part) for part in command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **options)
    if check and result.returncode:
        raise AssertionError(
            f"`{' '.join(command)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def poll(condition, timeout):
    """The first true value `condition()` returns within `timeout` s (asked every 0.1 s), else False."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return result


def wait_for(condition, timeout, what):
    """Poll `condition` until it returns something true, and return that; fail naming `what`
    after `timeout` s."""
    if not (result := poll(condition, timeout)):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return result
