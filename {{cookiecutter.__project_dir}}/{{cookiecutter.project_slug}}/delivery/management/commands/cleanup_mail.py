from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from post_office.management.commands.cleanup_mail import Command as PostOfficeCleanup
from post_office.models import STATUS, Attachment, Email

from ...state import FINAL


class Command(PostOfficeCleanup):
    help = (
        "Delete the sent, failed and expired mail created more than MAIL_KEEP_DAYS days ago, "
        "and the attachments no other mail uses. Mail still waiting to be sent is kept. "
        "post_office's command, with the site's defaults and rules."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--keep-attachments",
            action="store_false",
            dest="delete_attachments",
            help="keep the attachment files (deleted by default)",
        )
        parser.set_defaults(days=settings.MAIL_KEEP_DAYS, delete_attachments=True)

    def handle(self, verbosity, days, delete_attachments, batch_size, **options):
        cutoff = timezone.now() - timedelta(days)
        done = Q(delivery__state__in=FINAL) | Q(
            delivery=None, status__in=(STATUS.sent, STATUS.failed)
        )
        old = Email.objects.filter(done, created__lt=cutoff)
        deleted = 0
        while ids := list(old.values_list("pk", flat=True)[:batch_size]):
            deleted += Email.objects.filter(pk__in=ids).delete()[1].get("post_office.Email", 0)
        files = 0
        if delete_attachments:
            while orphans := list(Attachment.objects.filter(emails=None)[:batch_size]):
                for attachment in orphans:
                    attachment.file.delete(save=False)
                files += Attachment.objects.filter(pk__in=[a.pk for a in orphans]).delete()[0]
        self.stdout.write(
            f"Deleted {deleted} mails created before {cutoff} and {files} attachments."
        )
