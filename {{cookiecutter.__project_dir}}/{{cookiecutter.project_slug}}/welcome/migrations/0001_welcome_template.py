from django.db import migrations

SUBJECT = "Welcome to {{ cookiecutter.project_name }}, {% raw %}{{ name }}{% endraw %}"
TEXT = """Hello {% raw %}{{ name }}{% endraw %},

Welcome to {{ cookiecutter.project_name }}.
"""
HTML = """<p>Hello {% raw %}{{ name }}{% endraw %},</p>
<p>Welcome to <strong>{{ cookiecutter.project_name }}</strong>.</p>
"""


def create_template(apps, schema_editor):
    EmailTemplate = apps.get_model("post_office", "EmailTemplate")
    EmailTemplate.objects.update_or_create(
        name="welcome",
        language="",
        defaults={"subject": SUBJECT, "content": TEXT, "html_content": HTML},
    )


def delete_template(apps, schema_editor):
    apps.get_model("post_office", "EmailTemplate").objects.filter(name="welcome").delete()


class Migration(migrations.Migration):
    dependencies = [("post_office", "0014_alter_email_recipient_delivery_status_and_more")]

    operations = [migrations.RunPython(create_template, delete_template)]
