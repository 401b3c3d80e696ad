from django.conf import settings
from post_office.management.commands.cleanup_mail import Command as PostOfficeCleanup


class Command(PostOfficeCleanup):
    help = (
        "Delete mail older than MAIL_KEEP_DAYS days, with the attachments no other mail uses. "
        "post_office's command with the site's defaults."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(days=settings.MAIL_KEEP_DAYS, delete_attachments=True)
