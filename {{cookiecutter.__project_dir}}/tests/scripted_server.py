from types import SimpleNamespace

from django.core.mail.backends.locmem import EmailBackend


class ScriptedServer(EmailBackend):
    """Django's in-memory outbox, answering with the queued `errors` first, and refusing the
    recipients of the queued `refusals` ({address: (code, answer)}) while it takes the others."""

    errors = []
    refusals = []

    def send_messages(self, messages):
        if ScriptedServer.errors:
            raise ScriptedServer.errors.pop(0)
        refused = ScriptedServer.refusals.pop(0) if ScriptedServer.refusals else {}
        self.connection = SimpleNamespace(refused=refused)  # as smtplib's sendmail() reports them
        return super().send_messages(messages)


class OtherServer(EmailBackend):
    """Another mail server (a post_office backend alias); keeps what it got in `received`."""

    received = []

    def send_messages(self, messages):
        OtherServer.received.extend(messages)
        return len(messages)
