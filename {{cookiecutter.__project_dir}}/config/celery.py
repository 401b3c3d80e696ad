"""The Celery app: `celery -A config worker` runs the workers that deliver mail."""

import logging
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready
from django.conf import settings
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("{{ cookiecutter.project_slug }}")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker's node name unless --hostname gives one: the site's queue at this host.
os.environ.setdefault("CELERY_WORKER_HOSTNAME", f"{settings.MAIL_QUEUE}@%h")


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
