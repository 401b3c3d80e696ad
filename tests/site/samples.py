"""The contents of the sample mails, shared by the scripts and the tests that check them."""

import random

RICH_HTML = "<p>Hello <b>{n}</b> ☃</p>"
RICH_PDF = bytes(range(256)) * 40

# A mail that exercises what post_office and SMTP tend to mangle.
CONTENT_SUBJECT = "Grüße ✉ 你好 {n}"
CONTENT_FROM = "Zoë Ünïcode <zoe@example.com>"
CONTENT_TO = "Jörg Müller <jorg{n}@exämple.com>"
CONTENT_HTML = '<p>Logo: <img src="cid:logo@example.com"></p>'
CONTENT_ATTACHMENTS = [
    ("report.pdf", b"%PDF-1.7\n\x00\x01\xfe\xff" + bytes(range(256)), "application/pdf"),
    ("data.csv", "naïve,café,€\r\n1,2,3\r\n", "text/csv"),
    ("archive.zip", b"PK\x03\x04" + bytes(reversed(range(256))) * 8, "application/zip"),
]
LOGO_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
LOGO_CID = "<logo@example.com>"

# Larger than RabbitMQ 4's default max_message_size (16 MiB) once base64-encoded.
BIG_SIZE = 20 * 1024 * 1024


def big_attachment():
    """BIG_SIZE bytes, the same every time, that no compressor shrinks."""
    return random.Random(20).randbytes(BIG_SIZE)
