"""The admin asks Django's model permissions: staff who may only view mails, suppressions or
nothing cannot resend, lift or read what they may not."""

import pytest
from django.contrib.auth.models import Permission, User
from post_office import mail as post_office

from {{ cookiecutter.project_slug }}.delivery.models import Delivery
from {{ cookiecutter.project_slug }}.recipients import suppression
from {{ cookiecutter.project_slug }}.recipients.models import Recipient

pytestmark = pytest.mark.django_db

MAILS = "/admin/post_office/email/"
SUPPRESSIONS = "/admin/recipients/suppression/"
RECIPIENTS = "/admin/recipients/recipient/"


def staff(client, *permissions):
    """The client, logged in as a staff user with only these permissions ("view_email")."""
    user = User.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client.force_login(user)
    return client


def test_view_only_staff_are_not_offered_send_again_and_posting_it_changes_nothing(client):
    email = post_office.send("ada@example.com", subject="Failed", message="Body")
    Delivery.objects.filter(email_id=email.pk).update(state="failed")
    before = Delivery.objects.get(email_id=email.pk)
    clerk = staff(client, "view_email")

    page = clerk.get(MAILS)
    assert page.status_code == 200
    assert 'value="send_again"' not in page.content.decode()
    clerk.post(MAILS, {"action": "send_again", "_selected_action": [email.pk]})

    after = Delivery.objects.get(email_id=email.pk)
    assert (after.state, after.version) == ("failed", before.version)


def test_staff_who_may_change_mails_are_offered_send_again(client):
    post_office.send("ada@example.com", subject="Hi", message="Body")

    page = staff(client, "view_email", "change_email").get(MAILS).content.decode()

    assert 'value="send_again"' in page


def test_view_only_staff_cannot_lift_a_suppression(client):
    row = suppression.suppress("ada@example.com", "hard_bounce")
    clerk = staff(client, "view_suppression")

    page = clerk.get(SUPPRESSIONS)
    assert page.status_code == 200
    assert 'value="lift"' not in page.content.decode()
    clerk.post(SUPPRESSIONS, {"action": "lift", "_selected_action": [row.pk]})

    row.refresh_from_db()
    assert row.lifted is None
    assert suppression.suppressed(["ada@example.com"], bulk=False)


def test_staff_who_may_change_suppressions_are_offered_lift(client):
    suppression.suppress("ada@example.com", "hard_bounce")

    page = staff(client, "view_suppression", "change_suppression").get(SUPPRESSIONS)

    assert 'value="lift"' in page.content.decode()


def test_staff_see_recipients_only_with_the_permission_to(client):
    email = post_office.send("ada@example.com", subject="Hi", message="Body")
    Recipient.objects.create(email=email, address="ada@example.com", provider="X", message_id="1")

    assert staff(client).get(RECIPIENTS).status_code == 403
    client.logout()
    User.objects.all().delete()
    assert "ada@example.com" in staff(client, "view_recipient").get(RECIPIENTS).content.decode()
