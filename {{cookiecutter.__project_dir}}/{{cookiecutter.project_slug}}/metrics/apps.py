from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.metrics"
    verbose_name = "Metrics"

    def ready(self):
        from celery.signals import worker_ready, worker_shutdown

        from . import tally

        # A worker reports that it lives (and adds its counts) from when it consumes until it stops.
        worker_ready.connect(tally.start, dispatch_uid="metrics_tally_start", weak=False)
        worker_shutdown.connect(tally.stop, dispatch_uid="metrics_tally_stop", weak=False)
