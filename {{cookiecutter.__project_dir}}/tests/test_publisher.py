import pytest
from django.core import mail

from {{ cookiecutter.project_slug }}.delivery import handoff
from {{ cookiecutter.project_slug }}.delivery.models import Delivery


@pytest.mark.background_handoff
@pytest.mark.django_db(transaction=True)
def test_committed_mail_is_handed_off_by_the_background_thread():
    for n in range(5):
        mail.send_mail(f"Hello {n}", "Body", None, [f"ada{n}@example.com"])
    handoff.flush()

    assert sorted(message.subject for message in mail.outbox) == [f"Hello {n}" for n in range(5)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}
