"""The mail admin: states as a dashboard, and Resend, the list action and edits through the
workers."""

import smtplib
from email import message_from_bytes
from email.message import MIMEPart

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from post_office import mail as post_office
from post_office.models import Email

from {{ cookiecutter.project_slug }}.delivery import state
from {{ cookiecutter.project_slug }}.delivery.models import Delivery

pytestmark = pytest.mark.django_db

MAILS = "/admin/post_office/email/"


def state_of(email):
    return Delivery.objects.get(email_id=email.pk).state


def sweep():
    call_command("send_queued_mail", stdout=open("/dev/null", "w"))  # noqa: SIM115


def retrying_mail(server, committed):
    """A mail whose first attempt the server answered with 451."""
    server.errors.append(smtplib.SMTPDataError(451, b"4.3.0 Try again later"))
    with committed():
        email = post_office.send("ada@example.com", subject="Retried", message="Body")
    assert state_of(email) == "retrying"
    return email


def test_the_mail_log_is_behind_the_admin_login(client):
    response = client.get(MAILS)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_mail_list_says_where_each_mail_stands(admin_client, server, committed):
    post_office.send("bob@example.com", subject="Waiting", message="Body")
    retrying_mail(server, committed)

    page = admin_client.get(MAILS).content.decode()

    assert '<span class="mail-state mail-queued">queued</span>' in page
    assert '<span class="mail-state mail-retrying">retrying</span>' in page
    assert "1 failed attempt; next at " in page
    assert "4.3.0 Try again later" in page


def test_the_counts_by_state_are_filters(admin_client):
    Email.objects.bulk_create(
        Email(from_email="site@example.com", to=[f"{n}@example.com"]) for n in range(4)
    )
    emails = list(Email.objects.order_by("pk"))
    state.record(emails)
    Delivery.objects.filter(email_id__in=[email.pk for email in emails[:3]]).update(state="sent")

    page = admin_client.get(MAILS).content.decode()
    assert '<a class="mail-state mail-sent" href="?state=sent">sent 3</a>' in page
    assert '<a class="mail-state mail-queued" href="?state=queued">queued 1</a>' in page
    assert '<a class="mail-state mail-failed" href="?state=failed">failed 0</a>' in page

    sent_only = admin_client.get(MAILS, {"state": "sent"}).content.decode()
    assert sent_only.count('<span class="mail-state mail-sent">') == 3
    assert '<span class="mail-state mail-queued">' not in sent_only


def test_resend_asks_first_and_a_get_changes_nothing(admin_client, server, committed):
    email = retrying_mail(server, committed)

    page = admin_client.get(f"{MAILS}{email.pk}/resend/").content.decode()

    assert "Send this mail again?" in page and 'method="post"' in page
    assert state_of(email) == "retrying"
    assert Email.objects.get(pk=email.pk).logs.count() == 1


def test_resend_of_a_retrying_mail_keeps_it_retrying_until_the_server_is_back(
    admin_client, server, committed
):
    email = retrying_mail(server, committed)
    server.errors.append(smtplib.SMTPServerDisconnected("still down"))

    with committed():
        response = admin_client.post(f"{MAILS}{email.pk}/resend/", follow=True)

    assert "it was retrying; it is handed to a worker again" in response.content.decode()
    assert state_of(email) == "retrying", "a resend while the server is down fails nothing"
    assert mail.outbox == []
    Delivery.objects.filter(email_id=email.pk).update(due=timezone.now())  # the retry's time
    sweep()  # the server is back
    assert (state_of(email), len(mail.outbox)) == ("sent", 1)


def test_resend_of_a_mail_with_an_inline_image_sends_the_image_unchanged(admin_client, committed):
    image_bytes = b"\x89PNG\r\n\x1a\n\x00\xff\r\n binary"
    message = mail.EmailMultiAlternatives("Logo", "Body", to=["ada@example.com"])
    message.attach_alternative('<img src="cid:logo">', "text/html")
    image = MIMEPart()
    image.set_content(
        image_bytes, "image", "png", disposition="inline", filename="logo.png", cid="<logo>"
    )
    message.attach(image)
    with committed():
        message.send()

    with committed():
        admin_client.post(f"{MAILS}{Email.objects.get().pk}/resend/")

    assert [sent_image(delivered) for delivered in mail.outbox] == [image_bytes, image_bytes]


def sent_image(message):
    """The image's bytes as a mail client reads them from what went over the wire."""
    [part] = [p for p in message_from_bytes(message.message().as_bytes()).walk() if p["Content-ID"]]
    return part.get_payload(decode=True)


def test_the_list_action_leaves_a_mail_being_sent_alone_and_it_is_sent_once(
    admin_client, committed
):
    sending = post_office.send("ada@example.com", subject="Sending", message="Body")
    failed = post_office.send("bob@example.com", subject="Failed", message="Body")
    Delivery.objects.filter(email_id=sending.pk).update(state="sending")
    Delivery.objects.filter(email_id=failed.pk).update(state="failed")

    with committed():
        response = admin_client.post(
            MAILS,
            {"action": "send_again", "_selected_action": [sending.pk, failed.pk]},
            follow=True,
        )

    page = response.content.decode()
    assert "1 mails handed to a worker again. 1 left alone: they are being sent right now." in page
    assert [message.subject for message in mail.outbox] == ["Failed"]
    assert state_of(sending) == "sending"
    state.sent(sending.pk, {})  # its worker finishes
    assert (state_of(sending), len(mail.outbox)) == ("sent", 1)


def test_an_admin_edit_of_a_waiting_mail_leaves_it_due_for_the_sweeper(admin_client):
    email = post_office.send("ada@example.com", subject="Typo", message="Body")
    Delivery.objects.filter(email_id=email.pk).update(due=timezone.now())  # its hand-off failed

    change = f"{MAILS}{email.pk}/change/"
    response = admin_client.post(change, form_data(admin_client.get(change), priority="2"))

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Email.objects.get(pk=email.pk).priority == 2
    sweep()
    assert (state_of(email), len(mail.outbox)) == ("sent", 1)


def test_an_edit_that_moves_the_scheduled_time_ahead_makes_the_mail_wait(admin_client):
    email = post_office.send("ada@example.com", subject="Later", message="Body")
    later = (timezone.localtime() + timezone.timedelta(hours=2)).replace(microsecond=0)

    change = f"{MAILS}{email.pk}/change/"
    data = form_data(admin_client.get(change))
    data.update({"scheduled_time_0": f"{later:%Y-%m-%d}", "scheduled_time_1": f"{later:%H:%M:%S}"})
    admin_client.post(change, data)

    delivery = Delivery.objects.get(email_id=email.pk)
    assert (delivery.state, delivery.due) == ("scheduled", later)
    sweep()
    assert mail.outbox == []


def test_post_offices_status_cannot_be_edited_behind_the_states_back(admin_client):
    email = post_office.send("ada@example.com", subject="Hello", message="Body")

    page = admin_client.get(f"{MAILS}{email.pk}/change/").content.decode()

    assert 'name="status"' not in page


def test_the_log_list_shows_a_passing_failure_as_retrying(admin_client, server, committed):
    retrying_mail(server, committed)

    page = admin_client.get("/admin/post_office/log/").content.decode()

    assert '<td class="field-what_happened">retrying</td>' in page


def form_data(page, **changes):
    """What the admin's change form would post back unchanged, with `changes`."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.disabled or value is None:
            continue
        data.update(
            split_widget_data(form[name], value) if isinstance(value, list) else {name: value}
        )
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update(
            {management[name].html_name: management[name].value() for name in management.fields}
        )
    return {**data, **changes}


def split_widget_data(bound, value):
    """A field drawn as several inputs (a date and a time) posts one value per input."""
    if bound.field.widget.__class__.__name__ == "SplitDateTimeWidget":
        return {f"{bound.html_name}_0": value[0] or "", f"{bound.html_name}_1": value[1] or ""}
    return {bound.html_name: ",".join(value)}


def mail_with_inline_image(committed, image_bytes, subtype):
    content_id = "0123456789abcdef0123456789abcdef"  # as post_office's inline_image tag makes
    message = mail.EmailMultiAlternatives("Logo", "Body", to=["ada@example.com"])
    message.attach_alternative(f'<img src="cid:{content_id}">', "text/html")
    image = MIMEPart()
    image.set_content(image_bytes, "image", subtype, disposition="inline", cid=f"<{content_id}>")
    message.attach(image)
    with committed():
        message.send()
    return f"{MAILS}{Email.objects.get().pk}/image/{content_id}"


def test_an_inline_svg_image_is_not_served_from_the_sites_origin(admin_client, committed):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    url = mail_with_inline_image(committed, svg, "svg+xml")

    response = admin_client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "text/plain"
    assert b"<script>" not in response.content


def test_an_inline_raster_image_is_served_sandboxed_and_never_sniffed(admin_client, committed):
    png = b"\x89PNG\r\n\x1a\n\x00\xff\r\n binary"
    url = mail_with_inline_image(committed, png, "png")

    response = admin_client.get(url)

    assert (response.status_code, response["Content-Type"], response.content) == (
        200,
        "image/png",
        png,
    )
    assert response["Content-Security-Policy"].startswith("sandbox;")
    assert response["X-Content-Type-Options"] == "nosniff"
