"""EMAIL_SERVICE and the service's key in the environment choose the workers' mailer."""

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured

from config.transport import transport


def mailer_for(**variables):
    env = environ.Env()
    env.ENVIRON = variables
    return transport(env)


def test_without_settings_mail_goes_to_the_local_catcher():
    mailer, where = mailer_for()

    assert mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert where == "smtp://localhost:1025"


def test_email_url_names_the_server_with_its_credentials():
    mailer, where = mailer_for(EMAIL_URL="smtp+tls://me%40example.com:p%2Fss@mail.example.com:587")

    options = mailer["OPTIONS"]
    assert (options["username"], options["password"]) == ("me@example.com", "p/ss")
    assert (options["use_tls"], where) == (True, "smtp://mail.example.com:587")


@pytest.mark.parametrize(
    "service, key",
    [
        ("brevo", "BREVO_API_KEY"),
        ("mailgun", "MAILGUN_API_KEY"),
        ("postmark", "POSTMARK_SERVER_TOKEN"),
        ("sendgrid", "SENDGRID_API_KEY"),
    ],
)
def test_a_service_with_its_key_is_anymails_backend(service, key):
    mailer, where = mailer_for(EMAIL_SERVICE=service, **{key: "the-key"})

    assert mailer["BACKEND"] == f"anymail.backends.{service}.EmailBackend"
    assert "the-key" in mailer["OPTIONS"].values()
    assert where == service


def test_amazon_ses_is_used_once_its_region_is_set():
    mailer, where = mailer_for(EMAIL_SERVICE="amazon_ses", AWS_REGION="eu-west-1")

    assert mailer["BACKEND"] == "anymail.backends.amazon_ses.EmailBackend"
    assert mailer["OPTIONS"]["client_params"]["region_name"] == "eu-west-1"
    assert where == "amazon_ses"


def test_a_service_without_its_key_leaves_mail_with_email_url_and_says_so():
    mailer, where = mailer_for(EMAIL_SERVICE="postmark", POSTMARK_SERVER_TOKEN="")

    assert mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert where == "smtp://localhost:1025 (postmark needs POSTMARK_SERVER_TOKEN)"


def test_an_unknown_service_is_refused_with_the_choices():
    with pytest.raises(ImproperlyConfigured, match="'mailchimp' is not one of smtp, amazon_ses"):
        mailer_for(EMAIL_SERVICE="mailchimp")
