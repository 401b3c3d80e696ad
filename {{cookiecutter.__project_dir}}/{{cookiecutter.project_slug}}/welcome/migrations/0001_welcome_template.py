from django.conf import settings
from django.db import migrations

# A post_office template: Django template syntax, rendered with the context each mail is sent with.
SUBJECT = f"Welcome to {settings.SITE_NAME}, {{{{ name }}}}"
TEXT = f"""Hello {{{{ name }}}},

Welcome to {settings.SITE_NAME}.
"""
HTML = f"""<p>Hello {{{{ name }}}},</p>
<p>Welcome to <strong>{settings.SITE_NAME}</strong>.</p>
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
