from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.delivery"
    verbose_name = "Mail delivery"

    def ready(self):
        from post_office.signals import email_queued

        from . import outbox, post_office_replacements

        email_queued.connect(outbox.on_queued, dispatch_uid="record_and_hand_off")
        # post_office's doors that would send in the calling process go to the workers.
        post_office_replacements.install()
