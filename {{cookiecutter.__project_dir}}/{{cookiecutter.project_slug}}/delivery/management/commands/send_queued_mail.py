from django.core.management.base import BaseCommand

from ...sweeper import sweep

# post_office's options, accepted so that its cron lines work, and why they change nothing.
POST_OFFICE_OPTIONS = {
    "processes": "the Celery workers send the mail here (WORKER_CONCURRENCY sets how many at once)",
    "lockfile": "sweepers need no lock here: they claim mails in the database",
    "log_level": "post_office's LOG_LEVEL setting says what is logged",
}


class Command(BaseCommand):
    help = (
        "Hand every due mail to the Celery workers: mails queued while the broker was "
        "down, scheduled mails whose time has come, retries, and mails whose worker died. "
        "Replaces post_office's command of the same name; safe to run on several hosts at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("-p", "--processes", type=int, help="accepted; changes nothing here")
        parser.add_argument("-L", "--lockfile", help="accepted; changes nothing here")
        parser.add_argument("-l", "--log-level", type=int, help="accepted; changes nothing here")

    def handle(self, *args, **options):
        for option, why in POST_OFFICE_OPTIONS.items():
            if options[option] is not None:
                self.stderr.write(f"--{option.replace('_', '-')} changes nothing: {why}.")
        done = sweep()
        if done.left:
            self.stderr.write(f"The broker is unreachable: {done.left} due mails wait.")
        self.stdout.write(
            f"Handed {done.handed_off} mails to the workers; {done.interrupted} interrupted mails "
            f"queued again; {done.expired} expired; {done.adopted} found without a delivery state."
        )
