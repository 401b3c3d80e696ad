"""`--dist loadgroup` for pytest 9.2: pytest-xdist 3.8 keeps a group's tests on one worker by
appending "@group" to their node ids, which pytest 9.2's structured node ids ignore (every
test of a group then runs anywhere). This appends it where pytest 9.2 keeps the id."""

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")):
        return
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):
            if not hasattr(item, "_id"):
                raise pytest.UsageError(
                    "xdist_groups: this pytest keeps no item._id, so the xdist groups cannot be kept "
                    "on one worker; update tests/harness/xdist_groups.py for it"
                )
            item._id = type(item._id).parse(item.nodeid + suffix)
            if not item.nodeid.endswith(suffix):
                raise pytest.UsageError(f"xdist_groups: {item.nodeid} did not take its group {suffix}")
