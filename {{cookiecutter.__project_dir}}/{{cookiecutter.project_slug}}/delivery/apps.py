from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.delivery"
    verbose_name = "Mail delivery"

    def ready(self):
        from post_office import mail
        from post_office.models import Email
        from post_office.signals import email_queued

        from . import outbox, sweeper

        email_queued.connect(outbox.on_queued, dispatch_uid="record_and_hand_off")
        # post_office's doors that would send in the calling process go to the workers.
        Email.dispatch = outbox.dispatch
        mail.send_queued = sweeper.send_queued
        mail.send_queued_mail_until_done = lambda *args, **kwargs: sweeper.sweep()
