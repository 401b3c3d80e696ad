"""The welcome app's mail, tested as a site's owner tests their own mail: with `mail_server`,
what reached the mail server through the site's whole mail path."""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_welcome_mail_goes_out_to_them_greeting_them_by_name(mail_server, committed):
    with committed():
        call_command("send_welcome", "ada@example.com", "--name", "Ada", stdout=None)

    [welcome] = mail_server.messages
    assert mail_server.envelopes[0].rcpt_tos == ["ada@example.com"]
    assert welcome["To"] == "ada@example.com"
    assert welcome["Subject"] == f"Welcome to {settings.SITE_NAME}, Ada"
    assert "Hello Ada," in welcome.get_body(("plain",)).get_content()
    assert "<p>Hello Ada,</p>" in welcome.get_body(("html",)).get_content()


def test_a_newsletter_goes_out_with_a_link_that_stops_the_next_one(mail_server, committed, client):
    def send_newsletter():
        newsletter = EmailMessage(
            "News", "What is new.", to=["ada@example.com"], headers={"Precedence": "bulk"}
        )
        with committed():
            newsletter.send()

    send_newsletter()
    [sent] = mail_server.messages
    link = sent["List-Unsubscribe"].strip("<>")
    assert link.startswith(settings.SITE_URL)

    answer = client.post(urlsplit(link).path, {"List-Unsubscribe": "One-Click"})
    send_newsletter()

    assert answer.status_code == 200
    assert len(mail_server.messages) == 1, "the newsletter reached them after they unsubscribed"
