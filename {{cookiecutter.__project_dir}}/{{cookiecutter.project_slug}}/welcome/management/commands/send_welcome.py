from django.core.management.base import BaseCommand
from post_office import mail


class Command(BaseCommand):
    help = "Send the welcome mail (the post_office template 'welcome') to an address."

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("--name", default="there", help="How to greet the reader.")

    def handle(self, address, name, **options):
        email = mail.send(address, template="welcome", context={"name": name}, priority="high")
        self.stdout.write(f"Queued welcome mail {email.pk} to {address}.")
