"""Settings for the site.

Everything that differs between machines comes from the environment; a `.env`
file beside manage.py fills in what the environment leaves unset.
"""

from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.limits import count, percent, rate_limit, rate_limits
from config.transport import transport

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env")

SITE_NAME = "{{ cookiecutter.project_name }}"
SITE_PACKAGE = "{{ cookiecutter.project_slug }}"
SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before post_office: its send_queued_mail command replaces post_office's.
    "{{ cookiecutter.project_slug }}.delivery",
    "post_office",
    "djcelery_email",
    "{{ cookiecutter.project_slug }}.recipients",
    "{{ cookiecutter.project_slug }}.welcome",
    "{{ cookiecutter.project_slug }}.metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and sweeper write to one file: take the write lock when a
    # transaction starts, and wait for it instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A database that does not answer fails a request (and a health check) in seconds.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 3

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# post_office keeps attachments here: the web servers write them, the workers
# read them to build each mail, so all must see the same storage.
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=BASE_DIR / "media"))
MEDIA_URL = "media/"

# Behind a proxy that terminates TLS and sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Health checks (config/health.py) and Prometheus ask over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz(/mail)?$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# HSTS: start short, raise it once HTTPS works everywhere. Subdomains and the browsers'
# preload list (which needs a year and subdomains, and is hard to leave) only when asked:
# https://hstspreload.org/#deployment-recommendations
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
if SECURE_HSTS_PRELOAD and (SECURE_HSTS_SECONDS < 31_536_000 or not SECURE_HSTS_INCLUDE_SUBDOMAINS):
    raise ImproperlyConfigured(
        "DJANGO_SECURE_HSTS_PRELOAD needs DJANGO_SECURE_HSTS_SECONDS of a year (31536000)"
        " and DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS=true"
    )
# check --deploy asks for subdomains and preload: here they are choices made in .env.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
# Error reports hide the passwords in URLs (config/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SafeReportFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
}

# --- Mail -------------------------------------------------------------------
# send_mail() writes a post_office Email row and returns. The row is handed to
# a Celery worker through django-celery-email's task; in the worker the
# "deliver" mailer sends it through "transport" and writes the outcome on the row.
# See the delivery app and the README's "Where a mail stands".
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="noreply@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# smtp (EMAIL_URL) or an email service's API: see config/transport.py.
DELIVERY = f"{SITE_PACKAGE}.delivery"
TRANSPORT, MAIL_GOES_TO = transport(env, smtp_backend=f"{DELIVERY}.smtp.EmailBackend")

MAILERS = {
    "default": {"BACKEND": f"{DELIVERY}.outbox.QueueBackend"},
    "deliver": {"BACKEND": f"{DELIVERY}.worker.DeliverBackend", "OPTIONS": {"using": "transport"}},
    "transport": TRANSPORT,
}

MAIL_MAX_RETRIES = env.int("MAIL_MAX_RETRIES", default=3)
MAIL_RETRY_INTERVAL = env.int("MAIL_RETRY_INTERVAL", default=60)
# A mail the server keeps refusing for a passing reason (connection refused,
# timeout, 4xx reply) is retried until it is this old, counted from its
# scheduled time if it has one; then it is "failed".
MAIL_GIVE_UP_AFTER = timedelta(hours=env.int("MAIL_GIVE_UP_AFTER_HOURS", default=72))
# The sweeper hands a mail out again when it has been "sending" this long
# (its worker died), or when nothing happened to a queued mail this long (its
# task was lost). Keep the first above the time a task can take to send.
MAIL_SENDING_TIMEOUT = timedelta(seconds=env.int("MAIL_SENDING_TIMEOUT", default=300))
MAIL_HANDOFF_TIMEOUT = timedelta(seconds=env.int("MAIL_HANDOFF_TIMEOUT", default=3600))
# A worker thread keeps its connection to the mail server (or the service's API) across
# mails, and opens a new one after it lay unused this long (delivery/connections.py).
MAIL_CONNECTION_IDLE = timedelta(seconds=env.int("MAIL_CONNECTION_IDLE", default=10))
# The provider's limits, held by every worker together (delivery/pace.py, connections.py):
# mails a second ("14/s", "600/m", "50000/h"; empty: none, slowing down when throttled),
# connections open to the mail server at once, mails in any 24 hours (empty: none), and
# the share of that quota kept for transactional mail.
MAIL_RATE_LIMIT = rate_limit(env("MAIL_RATE_LIMIT", default=""))
# The rate limits of mailers you add to MAILERS ("news:10/s,alerts:600/m").
MAIL_RATE_LIMITS = rate_limits(
    env("MAIL_RATE_LIMITS", default=""), set(MAILERS) - {"default", "deliver", "transport"}
)
MAIL_MAX_CONNECTIONS = count(env("MAIL_MAX_CONNECTIONS", default=""), "MAIL_MAX_CONNECTIONS", 20)
MAIL_DAILY_QUOTA = count(env("MAIL_DAILY_QUOTA", default=""), "MAIL_DAILY_QUOTA", None)
MAIL_DAILY_QUOTA_RESERVE = percent(
    env("MAIL_DAILY_QUOTA_RESERVE", default=""), "MAIL_DAILY_QUOTA_RESERVE", 0.1
)
# /healthz/mail fails when a mail has waited this long past its time.
MAIL_HEALTH_MAX_DELAY = timedelta(seconds=env.int("MAIL_HEALTH_MAX_DELAY", default=600))
# Lets monitoring read the reasons of /healthz and /healthz/mail (see config/health.py).
HEALTH_TOKEN = env("HEALTH_TOKEN", default="")
# cleanup_mail deletes mail older than this, with its attachments.
MAIL_KEEP_DAYS = env.int("MAIL_KEEP_DAYS", default=90)

POST_OFFICE = {
    "DEFAULT_PRIORITY": "medium",
    # Where post_office itself would deliver: the delivery app replaces that sending
    # (Email.dispatch(), send_queued()) with hand-offs to the workers.
    "DEFAULT_MAILER": "transport",
    "MESSAGE_ID_ENABLED": True,
    # Message-IDs end in the sender's domain.
    "MESSAGE_ID_FQDN": parseaddr(DEFAULT_FROM_EMAIL)[1].rpartition("@")[2],
    "MAX_RETRIES": MAIL_MAX_RETRIES,
    "RETRY_INTERVAL": timedelta(seconds=MAIL_RETRY_INTERVAL),
    "LOG_LEVEL": 2,
}

# django-celery-email: one task carries up to CHUNK_SIZE messages; a message
# that fails is retried on its own, MAIL_MAX_RETRIES times, MAIL_RETRY_INTERVAL apart.
CELERY_EMAIL_CHUNK_SIZE = 10
CELERY_EMAIL_MESSAGE_EXTRA_ATTRIBUTES = ["email_id"]
CELERY_EMAIL_TASK_CONFIG = {
    "max_retries": MAIL_MAX_RETRIES,
    "default_retry_delay": MAIL_RETRY_INTERVAL,
}

# --- Delivery events and suppression (the recipients app) ---------------------
# The email services post delivery events to /anymail/<service>/tracking/ with HTTP basic
# auth: "user:password", made for each bake. Unset, the webhooks refuse every post.
ANYMAIL = {"WEBHOOK_SECRET": env("ANYMAIL_WEBHOOK_SECRET", default="")}
# The services that sign their posts: the key each shows in its webhook settings.
for service_key in ("MAILGUN_WEBHOOK_SIGNING_KEY", "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"):
    if env(service_key, default=""):
        ANYMAIL[service_key] = env(service_key)
# Amazon SES posts through Amazon SNS, whose signature is checked with a certificate from
# a URL that matches this (the default: SNS's own, over HTTPS).
AWS_SNS_CERT_URL = env(
    "AWS_SNS_CERT_URL", default=r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^?#]+\.pem"
)
# The Amazon SNS topics that carry this site's SES events ("arn:aws:sns:REGION:ACCOUNT:NAME",
# comma-separated). Empty: the SES webhook takes no post (SNS signs any AWS account's topic).
AWS_SNS_TOPIC_ARNS = env.list("AWS_SNS_TOPIC_ARNS", default=[])
# A webhook post larger than this is refused (413).
WEBHOOK_MAX_BYTES = env.int("WEBHOOK_MAX_BYTES", default=1_000_000)
# An SMTP server's refusal of a recipient with one of these codes suppresses the address.
MAIL_SUPPRESS_SMTP_CODES = env.list("MAIL_SUPPRESS_SMTP_CODES", cast=int, default=[550, 551, 553])
# The site's public address, for the one-click unsubscribe links of bulk mail.
SITE_URL = env("SITE_URL", default=f"https://{ALLOWED_HOSTS[0]}")
UNSUBSCRIBE_MAILTO = env("UNSUBSCRIBE_MAILTO", default="")

# --- Celery -----------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Without CELERY_BROKER_URL, kombu's filesystem transport (messages are files
# under .broker/) stands in for RabbitMQ: one machine, nothing to install.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR = Path(env("FILESYSTEM_BROKER_DIR", default=BASE_DIR / ".broker"))
    for folder in ("queue", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": BROKER_DIR / "queue",
        "data_folder_out": BROKER_DIR / "queue",
        "control_folder": BROKER_DIR / "control",
    }
else:
    # A publish returns only once RabbitMQ has the message.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The hand-off thread waits at most this long (seconds) for a broker that does
# not answer; the mail stays queued in the database for the sweeper.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0}
# The site's own queue, exchange and routing key, control and event exchanges, and its
# workers' node name (config/celery.py): sites, and environments of one site, that share
# a RabbitMQ virtual host stay apart. A second environment sets its own MAIL_QUEUE.
MAIL_QUEUE = env("MAIL_QUEUE", default=SITE_PACKAGE)
CELERY_TASK_DEFAULT_QUEUE = MAIL_QUEUE
CELERY_TASK_DEFAULT_EXCHANGE = MAIL_QUEUE
CELERY_TASK_DEFAULT_ROUTING_KEY = MAIL_QUEUE
CELERY_CONTROL_EXCHANGE = MAIL_QUEUE
CELERY_EVENT_EXCHANGE = f"{MAIL_QUEUE}.events"
# Bulk mail has a queue of its own (delivery/lanes.py); the workers serve both.
MAIL_BULK_QUEUE = f"{MAIL_QUEUE}.bulk"
# classic: one RabbitMQ node, post_office's four priorities; quorum: a queue RabbitMQ
# replicates over a cluster's nodes, retries delayed by the broker itself (Celery's
# native delayed delivery, which needs a topic exchange), two priority levels.
# https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/rabbitmq.html
RABBITMQ_QUEUE_TYPE = env("RABBITMQ_QUEUE_TYPE", default="classic")
if RABBITMQ_QUEUE_TYPE == "quorum":
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
elif RABBITMQ_QUEUE_TYPE == "classic":
    CELERY_TASK_QUEUE_MAX_PRIORITY = 3
else:
    raise ImproperlyConfigured(
        f"RABBITMQ_QUEUE_TYPE={RABBITMQ_QUEUE_TYPE!r} is not classic or quorum"
    )
QUORUM = RABBITMQ_QUEUE_TYPE == "quorum"
CELERY_TASK_QUEUES = [
    Queue(
        name,
        Exchange(MAIL_QUEUE, type="topic" if QUORUM else "direct"),
        routing_key=name,
        queue_arguments={"x-queue-type": "quorum"} if QUORUM else {},
    )
    for name in (MAIL_QUEUE, MAIL_BULK_QUEUE)
]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes a worker's database connections around every task unless told to
# keep them for this many tasks; config/celery.py closes them the way Django does
# (CONN_MAX_AGE, broken connections) instead.
CELERY_DB_REUSE_MAX = 1000
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
