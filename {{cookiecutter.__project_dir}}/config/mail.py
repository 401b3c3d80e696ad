"""The mail path's settings, read from .env in this one module: each MAIL_* value with its
default, its unit and what it means, the mailers, and what post_office and
django-celery-email are told. config/settings.py takes them all; the site's code reads them
as django.conf.settings."""

from datetime import timedelta
from email.utils import parseaddr

from config.base import SITE_PACKAGE, env
from config.limits import count, percent, rate_limit, rate_limits
from config.transport import transport

# The mailers' aliases in MAILERS.
QUEUE_MAILER = "default"  # send_mail() and every door: writes the row, hands it off
SENDER_MAILER = "deliver"  # in the worker, named by each task: sends the task's mails
SERVER_MAILER = "transport"  # the mail server or email service (config/transport.py)
# The attribute of a task's message that names its mail: the post_office row's id.
MAIL_ID_ATTRIBUTE = "email_id"

DELIVERY = f"{SITE_PACKAGE}.delivery"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="noreply@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# smtp (EMAIL_URL) or an email service's API; a line that says which, for the logs.
TRANSPORT, MAIL_GOES_TO = transport(env, smtp_backend=f"{DELIVERY}.smtp.EmailBackend")
MAILERS = {
    QUEUE_MAILER: {"BACKEND": f"{DELIVERY}.outbox.QueueBackend"},
    SENDER_MAILER: {
        "BACKEND": f"{DELIVERY}.sender.SenderBackend",
        "OPTIONS": {"using": SERVER_MAILER},
    },
    SERVER_MAILER: TRANSPORT,
}

# Retries Celery makes itself (count), and the time between two attempts (seconds).
MAIL_MAX_RETRIES = env.int("MAIL_MAX_RETRIES", default=3)
MAIL_RETRY_INTERVAL = env.int("MAIL_RETRY_INTERVAL", default=60)
# A mail failing for a passing reason (connection refused, timeout, 4xx reply) is "failed"
# this long (hours) after its time: its scheduled time, or when it was written.
MAIL_GIVE_UP_AFTER = timedelta(hours=env.int("MAIL_GIVE_UP_AFTER_HOURS", default=72))
# A mail "sending" this long (seconds) lost its worker: retried. Keep it above a task's time.
MAIL_SENDING_TIMEOUT = timedelta(seconds=env.int("MAIL_SENDING_TIMEOUT", default=300))
# A mail "handed off" this long (seconds) lost its task: handed out again by the sweeper.
MAIL_HANDOFF_TIMEOUT = timedelta(seconds=env.int("MAIL_HANDOFF_TIMEOUT", default=3600))
# A kept connection to the mail server unused this long (seconds) is closed.
MAIL_CONNECTION_IDLE = timedelta(seconds=env.int("MAIL_CONNECTION_IDLE", default=10))
# The provider's limits, for every worker together (delivery/pace.py): mails a second
# ("14/s", "600/m", "50000/h"; empty: none, slowing down when throttled).
MAIL_RATE_LIMIT = rate_limit(env("MAIL_RATE_LIMIT", default=""))
# The rate limits of mailers you add to MAILERS ("news:10/s,alerts:600/m").
MAIL_RATE_LIMITS = rate_limits(
    env("MAIL_RATE_LIMITS", default=""), set(MAILERS) - {QUEUE_MAILER, SENDER_MAILER, SERVER_MAILER}
)
# Connections open to the mail server at once (count).
MAIL_MAX_CONNECTIONS = count(env("MAIL_MAX_CONNECTIONS", default=""), "MAIL_MAX_CONNECTIONS", 20)
# Mails in any 24 hours (count; empty: none), and the share of it (percent, read as a
# fraction) kept for transactional mail.
MAIL_DAILY_QUOTA = count(env("MAIL_DAILY_QUOTA", default=""), "MAIL_DAILY_QUOTA", None)
MAIL_DAILY_QUOTA_RESERVE = percent(
    env("MAIL_DAILY_QUOTA_RESERVE", default=""), "MAIL_DAILY_QUOTA_RESERVE", 0.1
)
# /healthz/mail fails when a mail has waited this long (seconds) past its time.
MAIL_HEALTH_MAX_DELAY = timedelta(seconds=env.int("MAIL_HEALTH_MAX_DELAY", default=600))
# cleanup_mail deletes sent, failed and expired mail older than this (days), attachments too.
MAIL_KEEP_DAYS = env.int("MAIL_KEEP_DAYS", default=90)
# An SMTP refusal of a recipient with one of these codes suppresses the address.
MAIL_SUPPRESS_SMTP_CODES = env.list("MAIL_SUPPRESS_SMTP_CODES", cast=int, default=[550, 551, 553])
# The site's broker queue, exchange, routing key and worker node name: sites, and
# environments of one site, that share a RabbitMQ virtual host set their own.
MAIL_QUEUE = env("MAIL_QUEUE", default=SITE_PACKAGE)
# Bulk mail's own queue (delivery/lanes.py); the workers serve both.
MAIL_BULK_QUEUE = f"{MAIL_QUEUE}.bulk"

POST_OFFICE = {
    "DEFAULT_PRIORITY": "medium",
    # Where post_office itself would deliver: the delivery app replaces that sending
    # (Email.dispatch(), send_queued()) with hand-offs to the workers.
    "DEFAULT_MAILER": SERVER_MAILER,
    "MESSAGE_ID_ENABLED": True,
    # Message-IDs end in the sender's domain.
    "MESSAGE_ID_FQDN": parseaddr(DEFAULT_FROM_EMAIL)[1].rpartition("@")[2],
    "MAX_RETRIES": MAIL_MAX_RETRIES,
    "RETRY_INTERVAL": timedelta(seconds=MAIL_RETRY_INTERVAL),
    "LOG_LEVEL": 2,
}

# django-celery-email's task (delivery/task.py): one carries up to CHUNK_SIZE mails; a mail
# that fails is retried on its own, MAIL_MAX_RETRIES times, MAIL_RETRY_INTERVAL apart.
CELERY_EMAIL_CHUNK_SIZE = 10
CELERY_EMAIL_MESSAGE_EXTRA_ATTRIBUTES = [MAIL_ID_ATTRIBUTE]
CELERY_EMAIL_TASK_CONFIG = {
    "max_retries": MAIL_MAX_RETRIES,
    "default_retry_delay": MAIL_RETRY_INTERVAL,
}

# What config/settings.py takes: the settings, not the helpers above.
__all__ = [name for name in dir() if name.isupper()]
