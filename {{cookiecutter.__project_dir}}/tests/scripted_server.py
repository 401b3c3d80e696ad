from types import SimpleNamespace

from django.core.mail.backends.locmem import EmailBackend


class WorkerDied(BaseException):
    """The worker's process dies here (kill -9, out of memory): none of its code runs after
    this, so nothing it would have written is written. `accepted`: the server had taken the
    mail by then. (A BaseException, so no `except Exception` of the mail path catches it.)"""

    def __init__(self, accepted=False):
        super().__init__("the server had accepted the mail" if accepted else "before an answer")
        self.accepted = accepted


class ScriptedServer(EmailBackend):
    """Django's in-memory outbox, answering with the queued `errors` first, and refusing the
    recipients of the queued `refusals` ({address: (code, answer)}) while it takes the others."""

    errors = []
    refusals = []

    def send_messages(self, messages):
        if ScriptedServer.errors:
            error = ScriptedServer.errors.pop(0)
            if isinstance(error, WorkerDied) and error.accepted:
                super().send_messages(messages)
            raise error
        refused = ScriptedServer.refusals.pop(0) if ScriptedServer.refusals else {}
        self.connection = SimpleNamespace(refused=refused)  # as smtplib's sendmail() reports them
        return super().send_messages(messages)


class OtherServer(EmailBackend):
    """Another mail server (a post_office backend alias); keeps what it got in `received`."""

    received = []

    def send_messages(self, messages):
        OtherServer.received.extend(messages)
        return len(messages)
