"""Past "sent", through the running site (gunicorn, a worker, each email service's stand-in,
a real SMTP server): the services' delivery events, posted to the site's webhooks as each
service posts them, change what the admin shows and suppress where they should; the next
mail to a suppressed address never reaches the service; SMTP refusals and staff fill the
list; one-click unsubscribe stops bulk mail only; and bad posts are refused, writing
nothing."""

import json
import re
import secrets
import urllib.parse
from types import SimpleNamespace

import pytest
from harness.baked_site import bake, env_file, set_env_file
from harness.fake_email_api import FakeEmailApi
from harness.needs import service_answers
from harness.processes import wait_for
from harness.provider_events import KINDS, Poster, SendGridSigner, SnsSigner, request
from harness.smtp_catcher import free_port
from test_email_services import SERVICE_ENV, SERVICES

# One site for the module: its web server runs throughout, workers come and go.
pytestmark = pytest.mark.xdist_group("delivery_events")

# What the admin says last for each kind of event (Mailgun posts a temporary failure as
# "deferred"), and what each puts on the suppression list.
LAST_EVENT = {
    "delivered": "delivered",
    "bounced": "bounced",
    "soft_bounced": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}
SUPPRESSES = {
    "bounced": ("all", "hard_bounce"),
    "complained": ("all", "complaint"),
    "unsubscribed": ("bulk", "unsubscribe"),
}
# anymail's names of the services, which the site records with each message id.
ESP_NAMES = {
    "amazon_ses": "Amazon SES",
    "brevo": "Brevo",
    "mailgun": "Mailgun",
    "postmark": "Postmark",
    "sendgrid": "SendGrid",
}


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    site = bake(tmp_path_factory.mktemp("events"))
    mailgun_key = secrets.token_hex(16)
    poster = Poster(None, env_file(site)["ANYMAIL_WEBHOOK_SECRET"], mailgun_key)
    with FakeEmailApi("amazon_ses") as certificates:  # serves the stand-in SNS certificate
        certificates.files[poster.sns.path] = poster.sns.certificate
        poster.sns.url = certificates.url.rstrip("/") + poster.sns.path
        set_env_file(
            site,
            MAILGUN_WEBHOOK_SIGNING_KEY=mailgun_key,
            SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY=poster.sendgrid.verification_key,
            AWS_SNS_CERT_URL=r"http://127\.0\.0\.1:\d+/SimpleNotificationService-[0-9a-f]+\.pem",
            AWS_SNS_TOPIC_ARNS="arn:aws:sns:eu-west-1:123456789012:site-events",
        )
        # The worker must not look for AWS credentials off this machine.
        site.env = {"MAIL_RETRY_INTERVAL": "1", "AWS_EC2_METADATA_DISABLED": "true"}
        site.manage("migrate", "--verbosity", "0")
        site.manage("collectstatic", "--noinput", "--verbosity", "0")
        port = free_port()
        site.start("deploy/bin/web", env={"WEB_BIND": f"127.0.0.1:{port}"}, log="web.log")
        wait_for(lambda: service_answers(port), 30, "gunicorn listening")
        poster.web = f"http://127.0.0.1:{port}"
        admin = Admin(poster.web, site.script("admin_session.py"))
        yield SimpleNamespace(site=site, poster=poster, web=poster.web, admin=admin)
        site.stop_all()


class Admin:
    """A staff user's browser on the site's admin, behind a proxy that speaks HTTPS."""

    def __init__(self, web, session):
        self.web, self.cookies = web, {"sessionid": session}

    def headers(self):
        cookies = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {"Cookie": cookies, "X-Forwarded-Proto": "https"}

    def get(self, path):
        status, text, headers = request(self.web + path, headers=self.headers())
        assert status == 200, f"GET {path}: {status}"
        for cookie in headers.get_all("Set-Cookie") or []:
            name, value = cookie.split(";")[0].split("=", 1)
            self.cookies[name] = value
        return text

    def post(self, path, fields):
        """Submit the admin's form at `path` (its CSRF token read from the page first)."""
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}, doseq=True).encode()
        headers = {
            **self.headers(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.web.replace("http://", "https://"),
        }
        status, text, _ = request(self.web + path, body, headers)
        assert status in (200, 302), f"POST {path}: {status} {text[:500]}"
        return text


def recorded(site):
    return site.script("recipients.py")


def states(site, *mails):
    known = recorded(site)["mails"]
    return [known.get(str(mail), {}).get("state") for mail in mails]


def settled(site, *mails):
    """The states of the mails, once each is sent or failed."""

    def final():
        found = states(site, *mails)
        return found if set(found) <= {"sent", "failed"} else None

    return wait_for(final, 60, f"mails {mails} to be sent or failed")


def send(site, subject, *to, bulk=False):
    return site.script("mail_to.py", subject, *to, *(["--bulk"] if bulk else []))


@pytest.mark.parametrize("service", SERVICES)
def test_a_services_events_show_in_the_admin_and_suppress_and_the_next_mail_skips_them(events, service):
    site, poster, admin = events.site, events.poster, events.admin
    kinds = KINDS[service]
    to = {kind: f"{kind.replace('_', '-')}-{service.replace('_', '-')}@example.com" for kind in kinds}
    with FakeEmailApi(service) as api:
        worker = site.start_worker(
            name=service, env={"EMAIL_SERVICE": service, **SERVICE_ENV[service](api.url)}
        )
        mails = {kind: send(site, f"[{kind}] {service}", address) for kind, address in to.items()}
        assert set(settled(site, *mails.values())) == {"sent"}

        for kind in kinds:
            message_id = api.message_id(f"[{kind}] {service}")
            payload = poster.payload(service, kind, message_id, to[kind])
            for _ in range(2 if kind == "bounced" else 1):  # the bounce is posted twice
                status, text, _ = poster.post(service, payload)
                assert status == 200, f"{service} {kind}: {status} {text}"

        after = recorded(site)
        for kind in kinds:
            recipient = after["recipients"][to[kind]]
            assert recipient["last"] == LAST_EVENT[kind] or (
                service == "mailgun" and kind == "soft_bounced" and recipient["last"] == "deferred"
            ), f"{service} {kind}: {recipient}"
            assert recipient["events"] == 1, f"{service} {kind}: recorded {recipient['events']} times"
        suppressed = {address: (scope, reason) for address, scope, reason, _ in after["suppressed"]}
        assert {kind for kind in kinds if to[kind] in suppressed} == set(SUPPRESSES) & set(kinds)
        for kind in set(SUPPRESSES) & set(kinds):
            assert suppressed[to[kind]] == SUPPRESSES[kind], f"{service} {kind}"

        bounced = after["recipients"][to["bounced"]]
        page = admin.get(f"/admin/post_office/email/{mails['bounced']}/change/")
        assert re.search(rf">\s*bounced\s*<.*?>\s*{bounced['at']}\s*<", page, re.DOTALL), (
            f"the mail's page does not show the bounce at {bounced['at']}"
        )
        listed = admin.get("/admin/post_office/email/?events=bounced")
        assert f"[bounced] {service}" in listed and f"[delivered] {service}" not in listed
        assert re.search(r"every recipient bounced [1-9]", listed)

        requests_before = len(api.requests)
        again = send(site, f"again by {service}", to["delivered"], to["bounced"], to["complained"])
        withheld = send(site, f"withheld by {service}", to["bounced"])
        assert settled(site, again, withheld) == ["sent", "failed"], (
            "the suppressed recipient's mail was sent"
        )
        site.stop(worker)

    [request_text] = [text for text in api.requests[requests_before:] if f"again by {service}" in text]
    assert to["delivered"] in request_text
    assert to["bounced"] not in request_text and to["complained"] not in request_text
    assert not any("withheld by" in text for text in api.requests), "a mail to a suppressed address was sent"
    mails_now = recorded(site)["mails"]
    assert set(mails_now[str(again)]["refused"]) == {to["bounced"], to["complained"]}
    assert "suppressed since" in mails_now[str(withheld)]["reason"]


@pytest.fixture
def smtp_worker(events, smtp_server):
    worker = events.site.start_worker(
        name="smtp", env={"EMAIL_SERVICE": "smtp", "EMAIL_URL": smtp_server.url}
    )
    yield smtp_server
    events.site.stop(worker)


def test_one_click_unsubscribe_stops_bulk_mail_only(events, smtp_worker):
    site, catcher = events.site, smtp_worker
    news = send(site, "news 1", "eve@example.com", bulk=True)
    receipt = send(site, "receipt 1", "eve@example.com")
    assert settled(site, news, receipt) == ["sent", "sent"]

    received = zip(catcher.messages, catcher.received, strict=True)
    by_subject = {message["Subject"]: raw for message, raw in received}
    # The bytes the server received: each header unencoded, on one line (RFC 8058).
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in by_subject["news 1"]
    assert b"List-Unsubscribe" not in by_subject["receipt 1"]
    # SITE_URL, from the bake's domain, and a random token
    header = rb"\r\nList-Unsubscribe: <(https://example\.com/unsubscribe/[\w-]{22}/)>\r\n"
    url = re.search(header, by_subject["news 1"])
    assert url, by_subject["news 1"].decode(errors="replace")
    url = url[1].decode()

    # As a mail program posts it: no login, no cookie, the one field.
    status, text, _ = request(
        events.web + urllib.parse.urlsplit(url).path,
        b"List-Unsubscribe=One-Click",
        {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https"},
    )
    assert status == 200, text
    assert ["eve@example.com", "bulk", "one_click"] in [row[:3] for row in recorded(site)["suppressed"]]

    news_2 = send(site, "news 2", "eve@example.com", bulk=True)
    receipt_2 = send(site, "receipt 2", "eve@example.com")
    assert settled(site, news_2, receipt_2) == ["failed", "sent"], "bulk mail after the unsubscribe was sent"
    subjects = [message["Subject"] for message in catcher.messages]
    assert "receipt 2" in subjects and "news 2" not in subjects
    assert catcher.recipients_asked.count("eve@example.com") == 3, "the withheld mail reached the server"


def test_smtp_refusals_and_staff_fill_the_list_and_staff_lift_it(events, smtp_worker):
    site, catcher, admin = events.site, smtp_worker, events.admin
    first = send(site, "first", "reject-smtp@example.com", "ok-smtp@example.com")
    assert settled(site, first) == ["sent"]
    assert ["reject-smtp@example.com", "all", "smtp_refusal"] in [
        row[:3] for row in recorded(site)["suppressed"]
    ]

    admin.post(
        "/admin/recipients/suppression/add/",
        {"address": "Hand@Example.com", "scope": "all", "detail": "asked by phone"},
    )
    [hand] = [row for row in recorded(site)["suppressed"] if row[0] == "hand@example.com"]
    assert hand[1:3] == ["all", "by_hand"]
    listed = admin.get("/admin/recipients/suppression/")
    assert "hand@example.com" in listed and "reject-smtp@example.com" in listed

    second = send(site, "second", "reject-smtp@example.com", "hand@example.com")
    assert settled(site, second) == ["failed"], "a mail to suppressed addresses only was sent"
    assert catcher.recipients_asked.count("reject-smtp@example.com") == 1
    assert "hand@example.com" not in catcher.recipients_asked

    admin.post("/admin/recipients/suppression/", {"action": "lift", "_selected_action": [hand[3]]})
    assert "hand@example.com" not in [row[0] for row in recorded(site)["suppressed"]]
    assert "Lifted the suppression of hand@example.com" in admin.get(
        f"/admin/recipients/suppression/{hand[3]}/history/"
    )
    third = send(site, "third", "hand@example.com")
    assert settled(site, third) == ["sent"], "the lifted address still gets no mail"
    assert "hand@example.com" in catcher.recipients_asked


def bounce_for_a_known_recipient(events, service):
    """A hard bounce, as `service` posts it, for a message the site knows it sent."""
    message_id = {"mailgun": f"<{secrets.token_hex(8)}@mg.example.com>"}.get(service, secrets.token_hex(12))
    address = f"known-{secrets.token_hex(4)}@example.com"
    events.site.script("known_recipient.py", ESP_NAMES[service], message_id, address)
    return events.poster.payload(service, "bounced", message_id, address)


def wrong_signature(events, service, payload):
    """The payload signed by somebody who does not hold the service's key."""
    if service == "mailgun":
        payload["signature"]["signature"] = "0" * 64
        return payload, {}
    if service == "sendgrid":
        return payload, SendGridSigner().headers(json.dumps(payload).encode())
    if service == "amazon_ses":
        impostor = SnsSigner()
        return events.poster.sns.notification(json.loads(payload["Message"]), impostor.key), {}
    raise ValueError(service)


BAD_POSTS = {
    "no credentials": ("postmark", dict(secret=""), 401, "credentials required"),
    "wrong credentials": ("brevo", dict(secret="webhook:wrong"), 403, "wrong credentials"),
    "Mailgun signature wrong": ("mailgun", "signature", 403, "incorrect signature"),
    "SendGrid signature wrong": ("sendgrid", "signature", 403, "incorrect signature"),
    "Amazon SNS signature wrong": ("amazon_ses", "signature", 403, "SNS signature does not verify"),
    "malformed JSON": ("postmark", b'{"RecordType": "Bounce", "Email": ', 400, "not JSON"),
    "a body too large": ("sendgrid", b"[" + b" " * 1_000_001 + b"]", 413, "larger than"),
}


@pytest.mark.parametrize("service, bad, status, why", BAD_POSTS.values(), ids=BAD_POSTS.keys())
def test_a_bad_post_to_a_webhook_is_refused_clearly_and_writes_nothing(events, service, bad, status, why):
    payload = bounce_for_a_known_recipient(events, service)
    before = recorded(events.site)
    options = {}
    if bad == "signature":
        payload, headers = wrong_signature(events, service, payload)
        options["headers"] = headers
    elif isinstance(bad, bytes):
        payload = bad
    else:
        options = bad

    answer, text, headers = events.poster.post(service, payload, **options)

    assert (answer, why in text) == (status, True), text
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Basic ")
    after = recorded(events.site)
    assert (after["events"], after["suppressed"]) == (before["events"], before["suppressed"])


def test_an_event_for_a_message_the_site_never_sent_is_logged_and_answered_200(events):
    before = recorded(events.site)
    payload = events.poster.payload(
        "postmark", "bounced", "f0000000-0000-4000-8000-000000000000", "x@example.com"
    )

    status, _, _ = events.poster.post("postmark", payload)

    assert status == 200, "an error would make the service post it again and again"
    after = recorded(events.site)
    assert (after["events"], after["suppressed"]) == (before["events"], before["suppressed"])
    log = (events.site.path / "web.log").read_text()
    assert "f0000000-0000-4000-8000-000000000000, which this site did not send: ignored" in log


def genuine_token(site, address):
    """A token the site made for `address`, as its bulk mail carries."""
    code = f"from acme_mail.recipients import unsubscribe; print(unsubscribe.token_for({address!r}))"
    return site.manage("shell", "--no-imports", "-c", code).stdout.strip()


@pytest.mark.parametrize("tampered", ["guessed", "cut short", "an address"])
def test_a_forged_unsubscribe_link_is_refused_and_writes_nothing(events, tampered):
    before = recorded(events.site)["suppressed"]
    genuine = genuine_token(events.site, "ada@example.com")
    link = {
        "guessed": secrets.token_urlsafe(16),
        "cut short": genuine[:-3],
        "an address": "bob@example.com",
    }[tampered]

    status, text, _ = request(
        f"{events.web}/unsubscribe/{link}/",
        b"List-Unsubscribe=One-Click",
        {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https"},
    )

    assert status == 400 and "not valid" in text
    assert recorded(events.site)["suppressed"] == before
