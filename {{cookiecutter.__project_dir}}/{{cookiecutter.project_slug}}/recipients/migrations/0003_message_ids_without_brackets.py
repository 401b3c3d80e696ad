from django.db import migrations

import {{ cookiecutter.project_slug }}.recipients.models


def without_brackets(apps, schema_editor):
    """Ids kept as the send API gave them (`<id@domain>`), kept as events name them."""
    Recipient = apps.get_model("recipients", "Recipient")
    for row in Recipient.objects.filter(message_id__startswith="<").only("pk", "message_id"):
        Recipient.objects.filter(pk=row.pk).update(message_id=row.message_id)


class Migration(migrations.Migration):
    dependencies = [
        ("recipients", "0002_unsubscribe_links"),
    ]

    operations = [
        migrations.AlterField(
            model_name="recipient",
            name="message_id",
            field={{ cookiecutter.project_slug }}.recipients.models.MessageIdField(
                help_text="The service's id for the message.", max_length=255
            ),
        ),
        migrations.RunPython(without_brackets, migrations.RunPython.noop),
    ]
