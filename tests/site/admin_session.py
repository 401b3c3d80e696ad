"""Make a superuser and a logged-in session for it; print the session's key as JSON."""

import json

import _site  # noqa: F401
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore

User = get_user_model()
user = User.objects.filter(username="staff").first() or User.objects.create_superuser(
    "staff", "staff@example.com", "not-used-to-log-in"
)
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.save()
print(json.dumps(session.session_key))
