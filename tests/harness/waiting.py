"""Waiting for something to happen: the one poll loop of the tests, the bench and the demo."""

import time


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
