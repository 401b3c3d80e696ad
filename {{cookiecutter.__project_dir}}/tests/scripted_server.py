from django.core.mail.backends.locmem import EmailBackend


class ScriptedServer(EmailBackend):
    """Django's in-memory outbox, answering with the queued `errors` first."""

    errors = []

    def send_messages(self, messages):
        if ScriptedServer.errors:
            raise ScriptedServer.errors.pop(0)
        return super().send_messages(messages)
