"""A worker's shared transaction and a sweeper's hand-off write the same mails' rows at once on
PostgreSQL without a deadlock: every writer of several mails' rows locks them in the order of
their ids (the site's delivery/state.py and delivery/group_commit.py)."""

from harness.baked_site import bake


def test_a_workers_shared_transaction_and_a_sweepers_hand_off_of_its_mails_never_deadlock(tmp_path, postgres):
    site = bake(tmp_path)
    site.manage("migrate", "--verbosity", "0", env={"DATABASE_URL": postgres})

    result = site.script("lock_order.py", env={"DATABASE_URL": postgres})

    assert result["rows in the table's order"] == ["high", "low"], "the scenario was not set up"
    assert result["outcomes"] == {
        "sweeper waited": True,  # for a row the shared transaction held
        "take low": True,
        "take high": True,
        "handed off": "done",  # no deadlock
    }
    assert result["states"] == {"low": "sending", "high": "sending"}
