"""The mailer the workers deliver through, chosen in .env by EMAIL_SERVICE.

    smtp        the mail server at EMAIL_URL
    amazon_ses  Amazon SES, once AWS_REGION is set
    brevo       Brevo, once BREVO_API_KEY is set
    mailgun     Mailgun, once MAILGUN_API_KEY is set
    postmark    Postmark, once POSTMARK_SERVER_TOKEN is set
    sendgrid    SendGrid, once SENDGRID_API_KEY is set

Until a service has its key, mail goes to EMAIL_URL (by default the catcher
that `make run` starts), so a new site runs with nothing but Python. The
services' mailers are django-anymail's: https://anymail.dev/en/stable/esps/
"""

from django.core.exceptions import ImproperlyConfigured

# EMAIL_SERVICE: the variable that turns it on.
KEYS = {
    "amazon_ses": "AWS_REGION",
    "brevo": "BREVO_API_KEY",
    "mailgun": "MAILGUN_API_KEY",
    "postmark": "POSTMARK_SERVER_TOKEN",
    "sendgrid": "SENDGRID_API_KEY",
}
# The services anymail reaches over HTTP, and their APIs (<SERVICE>_API_URL moves one).
API_URLS = {
    "brevo": "https://api.brevo.com/v3/",
    "mailgun": "https://api.mailgun.net/v3",
    "postmark": "https://api.postmarkapp.com/",
    "sendgrid": "https://api.sendgrid.com/v3/",
}


def transport(env, smtp_backend="django.core.mail.backends.smtp.EmailBackend"):
    """The mailer's settings for the environment, and a line that says where mail goes."""
    service = env("EMAIL_SERVICE", default="smtp")
    if service != "smtp" and service not in KEYS:
        raise ImproperlyConfigured(
            f"EMAIL_SERVICE={service!r} is not one of {', '.join(['smtp', *KEYS])}"
        )
    if service == "amazon_ses" and env("AWS_REGION", default=""):
        return amazon_ses(env), service
    if service in API_URLS and env(KEYS[service], default=""):
        return web_api(service, env), service
    mailer = smtp(env, smtp_backend)
    where = f"smtp://{mailer['OPTIONS']['host']}:{mailer['OPTIONS']['port']}"
    if service != "smtp":
        where += f" ({service} needs {KEYS[service]})"
    return mailer, where


def timeout(env):
    """Seconds one send waits for the server or the API, at most."""
    return env.int("EMAIL_TIMEOUT", default=20)


def smtp(env, backend):
    url = env.email_url("EMAIL_URL", default="smtp://localhost:1025")
    return {
        "BACKEND": backend,
        "OPTIONS": {
            "host": url["EMAIL_HOST"],
            "port": url["EMAIL_PORT"],
            "username": url["EMAIL_HOST_USER"],
            "password": url["EMAIL_HOST_PASSWORD"],
            "use_tls": url.get("EMAIL_USE_TLS", False),
            "use_ssl": url.get("EMAIL_USE_SSL", False),
            "timeout": timeout(env),
        },
    }


def amazon_ses(env):
    # boto3 finds the credentials itself: AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY, a profile, or the machine's role.
    client = {
        "region_name": env("AWS_REGION"),
        "endpoint_url": env("AWS_SES_ENDPOINT_URL", default=None),
        "config": {"connect_timeout": timeout(env), "read_timeout": timeout(env)},
    }
    return {
        "BACKEND": "anymail.backends.amazon_ses.EmailBackend",
        "OPTIONS": {"client_params": client},
    }


def web_api(service, env):
    key_option = "server_token" if service == "postmark" else "api_key"
    options = {
        key_option: env(KEYS[service]),
        "api_url": env(f"{service.upper()}_API_URL", default=API_URLS[service]),
        "timeout": timeout(env),
    }
    if service == "mailgun":  # unset: Mailgun sends for the domain of each sender
        options["sender_domain"] = env("MAILGUN_SENDER_DOMAIN", default=None)
    return {"BACKEND": f"anymail.backends.{service}.EmailBackend", "OPTIONS": options}
