"""The contents of the sample mails, shared by the scripts and the tests that check them."""

RICH_HTML = "<p>Hello <b>{n}</b> ☃</p>"
RICH_PDF = bytes(range(256)) * 40
