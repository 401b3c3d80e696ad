import pytest
from django.core import mail
from post_office.models import STATUS, Email

from {{ cookiecutter.project_slug }}.delivery import publisher


@pytest.mark.background_handoff
@pytest.mark.django_db(transaction=True)
def test_committed_mail_is_handed_off_by_the_background_thread():
    for n in range(5):
        mail.send_mail(f"Hello {n}", "Body", None, [f"ada{n}@example.com"])
    publisher.flush()

    assert sorted(message.subject for message in mail.outbox) == [f"Hello {n}" for n in range(5)]
    assert set(Email.objects.values_list("status", flat=True)) == {STATUS.sent}
