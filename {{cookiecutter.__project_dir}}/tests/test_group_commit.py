"""The worker's threads commit their mails' moves together (delivery/group_commit.py): one
transaction for the writes that arrive together, each thread back only once its write is
committed, and one write's error only its own."""

import threading
import time

import pytest
from django.db import IntegrityError, connection

from {{ cookiecutter.project_slug }}.delivery import group_commit
from {{ cookiecutter.project_slug }}.delivery.models import Pace

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 5


@pytest.fixture
def commits(monkeypatch):
    """The batches committed, by size; the first thread waits until every thread's write
    arrived (instead of WINDOW), so the batch does not depend on the machine's speed."""
    sizes = []
    commit = group_commit._commit

    def gather():
        deadline = time.monotonic() + 30
        while len(group_commit._waiting) < THREADS and time.monotonic() < deadline:
            time.sleep(0.001)

    def counted(batch):
        sizes.append(len(batch))
        commit(batch)

    monkeypatch.setattr(group_commit, "_gather", gather)
    monkeypatch.setattr(group_commit, "_commit", counted)
    return sizes


def in_threads(write, count=THREADS, mail_id=lambda i: i):
    """Run group_commit.run(mail_id(i), write, i) in `count` threads; [(result or error)] by i."""
    outcomes = [None] * count

    def one(i):
        try:
            outcomes[i] = group_commit.run(mail_id(i), write, i)
        except Exception as error:
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def create_pace(i):
    mailer = "taken" if i == 3 else f"mailer {i}"  # the fourth one's row exists already
    Pace.objects.create(mailer=mailer)
    return mailer


def test_the_threads_writes_are_committed_in_one_transaction_each_thread_gets_its_result(commits):
    outcomes = in_threads(create_pace)

    assert commits == [THREADS]
    assert outcomes == ["mailer 0", "mailer 1", "mailer 2", "taken", "mailer 4"]
    assert Pace.objects.count() == THREADS


def test_a_write_that_fails_fails_alone_and_the_others_are_committed_once(commits):
    Pace.objects.create(mailer="taken")

    outcomes = in_threads(create_pace)

    assert isinstance(outcomes[3], IntegrityError)
    assert [outcome for i, outcome in enumerate(outcomes) if i != 3] == [
        "mailer 0",
        "mailer 1",
        "mailer 2",
        "mailer 4",
    ]
    # The shared transaction was rolled back, then each write ran alone.
    assert commits == [THREADS, 1, 1, 1, 1, 1]
    assert sorted(Pace.objects.values_list("mailer", flat=True)) == [
        "mailer 0",
        "mailer 1",
        "mailer 2",
        "mailer 4",
        "taken",
    ]


def test_the_writes_run_in_the_order_of_their_mails_ids_whatever_order_they_came_in(commits):
    order = []

    def write(i):
        order.append(i)

    in_threads(write, mail_id=lambda i: (3 * i) % THREADS)  # ids 0, 3, 1, 4, 2

    assert commits == [THREADS]
    assert order == [0, 2, 4, 1, 3]  # threads by their ids: 0, 1, 2, 3, 4


def test_a_thread_alone_commits_its_own_write():
    assert group_commit.run(7, create_pace, 0) == "mailer 0"

    assert Pace.objects.filter(mailer="mailer 0").exists()
