from django.apps import AppConfig


class WelcomeConfig(AppConfig):
    """An example of sending mail the right way; delete the app when you have your own."""

    name = "{{ cookiecutter.project_slug }}.welcome"
