"""Two writers of the same two mails' rows at once, as a worker's shared transaction
(group_commit.py) and a sweeper's "handed off" UPDATE meet on PostgreSQL; print how each
ended as JSON.

The worker's threads write their mails in the order they came (the higher id first), and
the first write waits inside the shared transaction until the sweeper's UPDATE is waiting for
one of its rows. The lower id's row lies after the other's in the table, as a row updated
since does, and the sweeper's connection reads the table in that order, as the planner does
for a long list of ids: a writer that locks rows in the order it finds them deadlocks here.
"""

import importlib
import json
import threading
import time

import _site  # noqa: F401
from django.conf import settings
from django.db import connection
from django.utils import timezone
from post_office.models import Email

delivery = importlib.import_module(f"{settings.SITE_PACKAGE}.delivery")
group_commit = importlib.import_module(f"{delivery.__name__}.group_commit")
state = importlib.import_module(f"{delivery.__name__}.state")
Delivery = importlib.import_module(f"{delivery.__name__}.models").Delivery

emails = [Email.objects.create(from_email="a@example.com", to=["b@example.com"]) for _ in range(2)]
state.record(emails)
low, high = sorted(email.pk for email in emails)
Delivery.objects.filter(pk=low).update(changed=timezone.now())  # its row now lies after high's
with connection.cursor() as cursor:
    table = Delivery._meta.db_table
    cursor.execute(f"SELECT email_id FROM {table} WHERE email_id = ANY(%s) ORDER BY ctid", [[low, high]])
    in_the_table = [row[0] for row in cursor.fetchall()]
versions = state.waiting([low, high])
outcomes = {}
sweeper_pid = []
sweeper_ready = threading.Event()


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def sweeper_waits():
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", sweeper_pid)
        return cursor.fetchone() == ("Lock",)


first = threading.Lock()


def take(pk):
    taken = state.take(Email.objects.select_related("delivery").get(pk=pk))
    if first.acquire(blocking=False):  # the first write in the shared transaction
        sweeper_ready.set()
        outcomes["sweeper waited"] = wait_for(lambda: bool(sweeper_pid)) and wait_for(sweeper_waits)
    return taken


def worker_thread(pk):
    try:
        outcomes[f"take {pk}"] = group_commit.run(pk, take, pk)
    except Exception as error:
        outcomes[f"take {pk}"] = f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def sweeper_thread():
    sweeper_ready.wait(30)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET enable_indexscan = off")
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("SELECT pg_backend_pid()")
            sweeper_pid.append(cursor.fetchone()[0])
        state.handed_off(versions)
        outcomes["handed off"] = "done"
    except Exception as error:
        outcomes["handed off"] = f"{type(error).__name__}: {error}"
    finally:
        connection.close()


# Both writes in one shared transaction, in the order they came: the higher id first.
group_commit._gather = lambda: wait_for(lambda: len(group_commit._waiting) == 2)
threads = [threading.Thread(target=sweeper_thread)]
for pk in (high, low):
    threads.append(threading.Thread(target=worker_thread, args=(pk,)))
    threads[-1].start()
    wait_for(lambda: len(group_commit._waiting) == len(threads) - 1)
threads[0].start()
for thread in threads:
    thread.join(60)
states = dict(Delivery.objects.filter(pk__in=(low, high)).values_list("pk", "state"))
named = {str(low): "low", str(high): "high"}
result = {
    "rows in the table's order": [named[str(pk)] for pk in in_the_table],
    "outcomes": {" ".join(named.get(word, word) for word in key.split()): o for key, o in outcomes.items()},
    "states": {"low": states[low], "high": states[high]},
}
print(json.dumps(result))
