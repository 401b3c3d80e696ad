from django.core.management.base import BaseCommand

from ... import status
from ...handoff import hand_off

BATCH_SIZE = 500


class Command(BaseCommand):
    help = (
        "Hand every due mail to the Celery workers: mails queued while the broker was "
        "down, scheduled mails whose time has come, retries, and mails whose worker died. "
        "Replaces post_office's command of the same name; safe to run on several hosts at once."
    )

    def handle(self, *args, **options):
        expired = status.fail_expired()
        interrupted = status.rescue_interrupted()
        handed = 0
        while batch := status.claim_due(BATCH_SIZE):
            left = hand_off(batch)
            handed += len(batch) - len(left)
            if left:
                status.leave_for_sweeper(left)
                self.stderr.write(f"The broker is unreachable: {len(left)} mails stay queued.")
                break
        self.stdout.write(
            f"Handed {handed} mails to the workers; "
            f"{interrupted} interrupted mails queued again; {expired} expired."
        )
