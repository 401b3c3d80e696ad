import pytest
from django.utils import timezone
from post_office import mail as post_office
from post_office.models import STATUS, Email

pytestmark = pytest.mark.django_db


def test_the_mail_log_is_behind_the_admin_login(client):
    response = client.get("/admin/post_office/email/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_mail_list_says_where_each_mail_stands(admin_client):
    post_office.send("ada@example.com", subject="Waiting", message="Body")
    retried = post_office.send("bob@example.com", subject="Retried", message="Body")
    Email.objects.filter(pk=retried.pk).update(
        status=STATUS.requeued, number_of_retries=2, scheduled_time=timezone.now()
    )

    page = admin_client.get("/admin/post_office/email/").content.decode()

    assert "queued" in page
    assert "retrying: 2 failed attempts, next at" in page


def test_the_mail_list_counts_the_mails_in_each_status(admin_client):
    statuses = [STATUS.sent] * 3 + [STATUS.queued] * 2 + [None, STATUS.requeued]
    Email.objects.bulk_create(
        Email(from_email="site@example.com", to=["ada@example.com"], status=status)
        for status in statuses
    )

    page = admin_client.get("/admin/post_office/email/").content.decode()

    assert "sent 3 · queued 2 · sending 1 · retrying 1 · failed 0" in page
