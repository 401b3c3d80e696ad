import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_welcome_mail_is_rendered_from_its_template(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_welcome", "ada@example.com", "--name", "Ada", stdout=None)

    [welcome] = mail.outbox
    assert welcome.to == ["ada@example.com"]
    assert welcome.subject == f"Welcome to {settings.SITE_NAME}, Ada"
    assert "<p>Hello Ada,</p>" in welcome.alternatives[0].content
