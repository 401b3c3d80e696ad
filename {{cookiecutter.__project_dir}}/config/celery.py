"""The Celery app: `celery -A config worker` runs the workers that deliver mail."""

import logging
import os

from celery import Celery
from celery.signals import celeryd_init, task_postrun, task_prerun, worker_ready
from celery.utils.nodenames import NODENAME_DEFAULT, nodename, nodesplit
from django.conf import settings
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("{{ cookiecutter.project_slug }}")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender, **kwargs):
    """Around each task, as Django does around each request: close the database
    connections that failed or are older than CONN_MAX_AGE, keep the others.
    (Celery itself would open a new connection for every task; see CELERY_DB_REUSE_MAX.)"""
    if not sender.request.is_eager:
        close_old_connections()


@worker_ready.connect
def say_where_mail_goes(sender, **kwargs):
    logging.getLogger(__name__).info("Delivering mail through %s", settings.MAIL_GOES_TO)


@celeryd_init.connect
def name_the_worker_after_the_queue(sender, instance, **kwargs):
    """Unless --hostname names it, a worker is MAIL_QUEUE@host: sites on one broker stay apart."""
    name, host = nodesplit(sender)
    if name == NODENAME_DEFAULT:
        instance.hostname = nodename(settings.MAIL_QUEUE, host)
