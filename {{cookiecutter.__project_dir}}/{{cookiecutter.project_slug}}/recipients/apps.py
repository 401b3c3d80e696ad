from django.apps import AppConfig


class RecipientsConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.recipients"
    verbose_name = "Recipients: delivery events and suppression"

    def ready(self):
        from anymail.signals import tracking

        from . import events

        tracking.connect(events.record, dispatch_uid="record_delivery_events")
