from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.delivery"
    verbose_name = "Mail delivery"

    def ready(self):
        from post_office.signals import email_queued

        from .publisher import hand_off_after_commit

        email_queued.connect(hand_off_after_commit, dispatch_uid="hand_off_after_commit")
