"""Print, as JSON, the scans of every query one scrape of /metrics makes (from EXPLAIN ANALYZE:
the node, its table, its index and the rows it read), how many queries it makes, the median
time of five scrapes in ms and how many mails are not sent."""

import json
import statistics
import time
from importlib import import_module

import _site  # noqa: F401
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

scrape = import_module(f"{settings.SITE_PACKAGE}.metrics.views").scrape


def nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def rows_read(node):
    """The rows a scan read: those it returned on every loop and those it dropped."""
    dropped = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return node["Actual Rows"] * node["Actual Loops"] + dropped


def scans(sql):
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0][0]["Plan"]
    return [
        (node["Node Type"], node.get("Relation Name"), node.get("Index Name"), rows_read(node))
        for node in nodes(plan)
        if "Scan" in node["Node Type"]
    ]


scrape()  # the Tally rows it makes on the first scrape
with CaptureQueriesContext(connection) as captured:
    scrape()
selects = [query["sql"] for query in captured.captured_queries if query["sql"].lstrip().startswith("SELECT")]
times = []
for _ in range(5):
    started = time.perf_counter()
    scrape()
    times.append(time.perf_counter() - started)
print(
    json.dumps(
        {
            "queries": len(captured.captured_queries),
            "scans": [scan for sql in selects for scan in scans(sql)],
            "ms": statistics.median(times) * 1000,
            "waiting": apps.get_model("delivery", "Delivery").objects.exclude(state="sent").count(),
        }
    )
)
