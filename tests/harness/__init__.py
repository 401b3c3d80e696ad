"""What the template's tests, its bench and `make demo` share (fixtures are in tests/conftest.py).

bakery               baking the template, apart from the user's cookiecutter config
baked_site           a baked site: its commands and processes, its .env, its web answers
deployed_site        a baked site owned by its own user, as on a server
processes            running a command, waiting for something: run, poll, wait_for
needs                what a test lacks: cannot_run, require_service, require_root
figures              figures measured during a run, printed at its end
services             a fresh RabbitMQ vhost and PostgreSQL database on the machine; a queue's fields
tcp_proxy            outages of a real service, made by a proxy the test cuts
smtp_catcher         a real SMTP server that keeps what it accepts, with providers' limits
fake_email_api       an email service's HTTP API, as django-anymail calls it
provider_events      delivery events as each email service posts them to a webhook
postfix_relay        a real Postfix in a container that limits its clients
containers           the container engine: Docker, else podman (podman, api_version_proxy)
stand_ins            stand-ins for the official images, built from Debian
rabbitmq_containers  RabbitMQ 4 nodes and clusters in containers
compose_site         a baked site's compose project on the container engine
workflow             a GitHub Actions workflow's jobs, run on this machine
xdist_groups         `--dist loadgroup` on pytest 9.2 (a pytest plugin)
"""
