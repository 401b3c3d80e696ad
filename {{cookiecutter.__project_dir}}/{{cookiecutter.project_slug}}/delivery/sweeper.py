"""The sweeper: hands out every mail whose `due` has passed (see state.py), from cron or
deploy/bin/sweep. Safe on several hosts at once."""

from dataclasses import dataclass

from . import handoff, state

BATCH_SIZE = 500


@dataclass
class Sweep:
    handed_off: int = 0
    left: int = 0  # due, but the broker was unreachable
    interrupted: int = 0
    expired: int = 0
    adopted: int = 0  # post_office rows no door recorded (written around post_office's API)


def sweep():
    done = Sweep(
        adopted=state.adopt(), expired=state.expire(), interrupted=state.rescue_interrupted()
    )
    while batch := state.claim_due(BATCH_SIZE):
        taken = handoff.publish(batch)
        done.handed_off += taken
        if taken < len(batch):
            done.left = len(batch) - taken
            break
    return done
