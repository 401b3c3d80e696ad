"""Delivery events as each email service posts them to its webhook, built from the formats
the services document (field names, nesting, types, how each signs its posts), and the
posting itself: the service's headers, the site's webhook secret, the service's signature.

`payload(service, kind, message_id, recipient)` builds one event of a kind:
delivered, bounced (a hard bounce), soft_bounced (a temporary one), complained, and
unsubscribed where the service sends one. `Poster` posts it to the site's webhook.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

SENDER = "noreply@example.com"
# The kinds each service posts (Amazon SES reports no unsubscribe; Brevo's is left out).
KINDS = {
    "amazon_ses": ["delivered", "bounced", "soft_bounced", "complained"],
    "brevo": ["delivered", "bounced", "soft_bounced", "complained"],
    "mailgun": ["delivered", "bounced", "soft_bounced", "complained", "unsubscribed"],
    "postmark": ["delivered", "bounced", "soft_bounced", "complained", "unsubscribed"],
    "sendgrid": ["delivered", "bounced", "soft_bounced", "complained", "unsubscribed"],
}


def iso(moment, digits=3):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[: 20 + digits] + "Z"


# --- Amazon SES: an SES event (configuration set event publishing) inside an SNS Notification


def ses_event(kind, message_id, recipient, now):
    mail = {
        "timestamp": iso(now - timedelta(seconds=5)),
        "source": SENDER,
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.com",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": "From", "value": SENDER}, {"name": "To", "value": recipient}],
        "commonHeaders": {"from": [SENDER], "to": [recipient], "subject": "events"},
        "tags": {"ses:configuration-set": ["site-events"]},
    }
    if kind == "delivered":
        return {
            "eventType": "Delivery",
            "mail": mail,
            "delivery": {
                "timestamp": iso(now),
                "processingTimeMillis": 1520,
                "recipients": [recipient],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
            },
        }
    if kind in ("bounced", "soft_bounced"):
        hard = kind == "bounced"
        return {
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": "Permanent" if hard else "Transient",
                "bounceSubType": "General" if hard else "MailboxFull",
                "bouncedRecipients": [
                    {
                        "emailAddress": recipient,
                        "action": "failed",
                        "status": "5.1.1" if hard else "4.2.2",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                        if hard
                        else "smtp; 452 4.2.2 mailbox full",
                    }
                ],
                "timestamp": iso(now),
                "feedbackId": f"{uuid.uuid4()}-000000",
                "reportingMTA": "dsn; e226-55.smtp-out.eu-west-1.amazonses.com",
            },
        }
    if kind == "complained":
        return {
            "eventType": "Complaint",
            "mail": mail,
            "complaint": {
                "complainedRecipients": [{"emailAddress": recipient}],
                "timestamp": iso(now),
                "feedbackId": f"{uuid.uuid4()}-000000",
                "userAgent": "Mozilla/5.0 (compatible; feedback loop)",
                "complaintFeedbackType": "abuse",
                "arrivalDate": iso(now - timedelta(seconds=1)),
            },
        }
    raise ValueError(kind)


class SnsSigner:
    """Signs SNS messages as SNS does, with a key whose certificate `url` serves."""

    SIGNED = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        ).public_bytes(serialization.Encoding.PEM)
        self.path = f"/SimpleNotificationService-{secrets.token_hex(16)}.pem"
        self.url = None  # where the certificate is served, set by the test

    def notification(self, message, key=None):
        sns = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:site-events",
            "Message": json.dumps(message),
            "Timestamp": iso(datetime.now(UTC)),
            "SignatureVersion": "2",
            "SigningCertURL": self.url,
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
        }
        text = "".join(f"{name}\n{sns[name]}\n" for name in self.SIGNED if name in sns)
        signature = (key or self.key).sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        sns["Signature"] = base64.b64encode(signature).decode()
        return sns


# --- Brevo: one event a post


def brevo_event(kind, message_id, recipient, now):
    name = {
        "delivered": "delivered",
        "bounced": "hard_bounce",
        "soft_bounced": "soft_bounce",
        "complained": "spam",
    }[kind]
    event = {
        "event": name,
        "email": recipient,
        "id": 1234567,
        "date": now.strftime("%Y-%m-%d %H:%M:%S"),
        "ts": int(now.timestamp()),
        "message-id": message_id,
        "ts_event": int(now.timestamp()),
        "subject": "events",
        "tag": "",
        "sending_ip": "185.41.28.109",
        "ts_epoch": int(now.timestamp() * 1000),
        "tags": [],
    }
    if kind == "bounced":
        event["reason"] = "550 5.1.1 The email account that you tried to reach does not exist"
    if kind == "soft_bounced":
        event["reason"] = "452 4.2.2 Mailbox full"
    return event


# --- Mailgun: {"signature": {...}, "event-data": {...}}, signed with the webhook signing key


def mailgun_event(kind, message_id, recipient, now, signing_key):
    data = {
        "id": secrets.token_urlsafe(16),
        "timestamp": now.timestamp(),
        "log-level": "info",
        "recipient": recipient,
        "recipient-domain": recipient.split("@")[1],
        "message": {
            "headers": {
                "to": recipient,
                "message-id": message_id.strip("<>"),
                "from": SENDER,
                "subject": "events",
            },
            "attachments": [],
            "size": 512,
        },
        "envelope": {"transport": "smtp", "sender": SENDER, "targets": recipient},
        "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
        "tags": [],
        "user-variables": {},
        "campaigns": [],
    }
    if kind == "delivered":
        data["event"] = "delivered"
        data["delivery-status"] = {
            "tls": True,
            "mx-host": "mx.example.com",
            "code": 250,
            "description": "",
            "attempt-no": 1,
            "message": "OK",
            "certificate-verified": True,
        }
    elif kind in ("bounced", "soft_bounced"):
        hard = kind == "bounced"
        data.update(event="failed", severity="permanent" if hard else "temporary")
        data["reason"] = "bounce" if hard else "generic"
        data["delivery-status"] = {
            "code": 550 if hard else 452,
            "message": "5.1.1 The email account that you tried to reach does not exist"
            if hard
            else "4.2.2 Mailbox full",
            "description": "",
            "attempt-no": 1,
        }
        data["log-level"] = "error" if hard else "warn"
    elif kind == "complained":
        data["event"] = "complained"
        data["log-level"] = "warn"
    elif kind == "unsubscribed":
        data["event"] = "unsubscribed"
        data["client-info"] = {"client-type": "browser", "user-agent": "Mozilla/5.0"}
    else:
        raise ValueError(kind)
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": data,
    }


# --- Postmark: one record a post


def postmark_event(kind, message_id, recipient, now):
    at = iso(now, digits=7)
    common = {"MessageID": message_id, "ServerID": 23, "MessageStream": "outbound", "Tag": "", "Metadata": {}}
    if kind == "delivered":
        return {
            "RecordType": "Delivery",
            **common,
            "Recipient": recipient,
            "DeliveredAt": at,
            "Details": "smtp;250 2.0.0 OK",
        }
    if kind in ("bounced", "soft_bounced", "complained"):
        types = {
            "bounced": ("Bounce", "HardBounce", 1, "Hard bounce"),
            "soft_bounced": ("Bounce", "SoftBounce", 4096, "Soft bounce"),
            "complained": ("SpamComplaint", "SpamComplaint", 512, "Spam complaint"),
        }
        record, type_, code, name = types[kind]
        return {
            "RecordType": record,
            **common,
            "ID": secrets.randbelow(10**12),
            "Type": type_,
            "TypeCode": code,
            "Name": name,
            "Description": "The server was unable to deliver your message (ex: unknown user).",
            "Details": "smtp;550 5.1.1 unknown user" if kind == "bounced" else "",
            "Email": recipient,
            "From": SENDER,
            "BouncedAt": at,
            "DumpAvailable": False,
            "Inactive": kind != "soft_bounced",
            "CanActivate": True,
            "Subject": "events",
        }
    if kind == "unsubscribed":
        return {
            "RecordType": "SubscriptionChange",
            **common,
            "ChangedAt": at,
            "Recipient": recipient,
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
        }
    raise ValueError(kind)


# --- SendGrid: a JSON array of events, signed with an ECDSA key


def sendgrid_event(kind, message_id, recipient, now):
    event = {
        "email": recipient,
        "timestamp": int(now.timestamp()),
        "smtp-id": f"<{uuid.uuid4().hex}@ismtpd0001p1lon1.sendgrid.net>",
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{secrets.token_urlsafe(16)}.filterdrecv-5bd8d7d8d6-abc12-1-0",
        "anymail_id": message_id,  # the custom_args anymail sent along
        "category": [],
    }
    if kind == "delivered":
        event.update(event="delivered", response="250 2.0.0 OK", tls=1, ip="149.72.1.2")
    elif kind in ("bounced", "soft_bounced"):
        hard = kind == "bounced"
        event.update(
            event="bounce",
            type="bounce" if hard else "blocked",
            status="5.1.1" if hard else "4.2.2",
            reason="550 5.1.1 The email account does not exist" if hard else "452 4.2.2 Mailbox full",
            bounce_classification="Invalid Address" if hard else "Mailbox Unavailable",
            ip="149.72.1.2",
            tls=1,
        )
    elif kind == "complained":
        event["event"] = "spamreport"
    elif kind == "unsubscribed":
        event["event"] = "unsubscribe"
    else:
        raise ValueError(kind)
    return [event]


class SendGridSigner:
    """The key pair of SendGrid's Signed Event Webhook; `verification_key` goes in .env."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.verification_key = base64.b64encode(public).decode()

    def headers(self, body, key=None):
        timestamp = str(int(time.time()))
        signature = (key or self.key).sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


class Poster:
    """Posts events to a site's webhooks as the services do, with the site's secret."""

    def __init__(self, web, secret, mailgun_key):
        self.web, self.secret, self.mailgun_key = web, secret, mailgun_key
        self.sns, self.sendgrid = SnsSigner(), SendGridSigner()

    def payload(self, service, kind, message_id, recipient):
        now = datetime.now(UTC)
        if service == "amazon_ses":
            return self.sns.notification(ses_event(kind, message_id, recipient, now))
        if service == "mailgun":
            return mailgun_event(kind, message_id, recipient, now, self.mailgun_key)
        return {"brevo": brevo_event, "postmark": postmark_event, "sendgrid": sendgrid_event}[service](
            kind, message_id, recipient, now
        )

    def post(self, service, payload, secret=None, headers=None):
        """POST a payload (or raw bytes) to the service's webhook; (status, text, headers)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}
        if service == "amazon_ses" and isinstance(payload, dict):
            sent.update(
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "x-amz-sns-message-type": payload.get("Type", ""),
                    "x-amz-sns-message-id": payload.get("MessageId", ""),
                    "x-amz-sns-topic-arn": payload.get("TopicArn", ""),
                    "User-Agent": "Amazon Simple Notification Service Agent",
                }
            )
        if service == "sendgrid":
            sent.update(self.sendgrid.headers(body))
        secret = self.secret if secret is None else secret
        if secret:
            sent["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        sent.update(headers or {})
        return request(f"{self.web}/anymail/{service}/tracking/", body, sent)


def request(url, body=None, headers=None, method=None):
    """(status, body text, headers) of an HTTP request, error statuses included."""
    call = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers
