"""RabbitMQ and a Celery worker, in the test's process.

ScriptedBroker stands in for django-celery-email's send_emails.apply_async: it keeps each
task published to it, serialized as Celery would, or answers as `answer` says. run() runs a
task the way a Celery worker does, not eagerly, so a retry is published to the broker.
"""

import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from celery.app.trace import build_tracer
from django.utils import timezone
from djcelery_email.tasks import send_emails
from kombu.exceptions import OperationalError
from kombu.utils.json import dumps, loads

from config import celery_app
from config.mail import MAIL_ID_ATTRIBUTE

TAKES_IT = "takes it"
# What the broker can do with a publish.
ANSWERS = (
    TAKES_IT,
    "a worker takes it at once",  # before the publisher has written that it handed it off
    "refuses the connection",
    "does not answer",  # the publish gives up after its timeout; nothing reached the queue
    "loses the confirm",  # the task reached the queue, but the publisher hears an error
)


@dataclass
class Task:
    args: list
    kwargs: dict
    retries: int = 0
    eta: datetime | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def mails(self):
        return [message[MAIL_ID_ATTRIBUTE] for message in self.args[0]]


class ScriptedBroker:
    def reset(self, worker):
        self.tasks = []
        self.answer = TAKES_IT
        self.worker = worker  # runs a task that a worker takes at once

    def apply_async(self, args=None, kwargs=None, countdown=None, retries=0, **options):
        if self.answer == "refuses the connection":
            raise OperationalError("[Errno 111] Connection refused")
        if self.answer == "does not answer":
            raise TimeoutError("timed out")
        eta = timezone.now() + timedelta(seconds=countdown) if countdown else None
        task = Task(loads(dumps(args)), loads(dumps(kwargs or {})), retries, eta)
        self.tasks.append(task)
        if self.answer == "loses the confirm":
            raise ConnectionResetError("[Errno 104] Connection reset by peer")
        if self.answer == "a worker takes it at once" and not eta:
            self.tasks.remove(task)
            self.worker(task)

    @contextmanager
    def answering(self, answer):
        self.answer = answer
        try:
            yield
        finally:
            self.answer = TAKES_IT

    def ready(self):
        """The tasks a worker may take now (a retry waits for its countdown)."""
        now = timezone.now()
        return [task for task in self.tasks if task.eta is None or task.eta <= now]


@cache
def tracer():
    return build_tracer(send_emails.name, celery_app.tasks[send_emails.name], app=celery_app)


def run(task):
    """Run the task as a worker's process does (Celery's own tracer, its signals included)."""
    tracer()(task.id, task.args, task.kwargs, {"retries": task.retries, "delivery_info": {}})
