"""Amazon SNS notifications signed with a key of the test's own, and its certificate."""

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem"


def key_and_certificate(valid_days=(-1, 1)):
    """A key and a self-signed certificate standing in for SNS's, valid for `valid_days`
    (from, to) around now."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now + datetime.timedelta(days=valid_days[0]))
        .not_valid_after(now + datetime.timedelta(days=valid_days[1]))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def signed(key, version="2", **fields):
    """An SNS notification about an SES event, signed with `key` as SNS signs."""
    message = {
        "Type": "Notification",
        "MessageId": "a1b2",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
        "Message": '{"eventType": "Delivery"}',
        "Timestamp": "2026-01-01T00:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **fields,
    }
    names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    text = "".join(f"{name}\n{message[name]}\n" for name in names if name in message)
    digest = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 (SNS's v1)
    message["Signature"] = base64.b64encode(
        key.sign(text.encode(), padding.PKCS1v15(), digest)
    ).decode()
    return message
