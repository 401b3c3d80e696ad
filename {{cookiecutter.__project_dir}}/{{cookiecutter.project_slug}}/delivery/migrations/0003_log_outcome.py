from itertools import batched

import django.db.models.deletion
from django.db import migrations, models

# The words the site's Log rows of a retried attempt began with, before the outcome was stored.
RETRIED = ("retrying", "setup", "interrupted")


def outcome_from_message(apps, schema_editor):
    """Every failed attempt's Log row: its outcome from the words its message begins with."""
    Log = apps.get_model("post_office", "Log")
    LogOutcome = apps.get_model("delivery", "LogOutcome")
    rows = Log.objects.filter(status=1).values_list("pk", "message").iterator()
    for batch in batched(rows, 500):
        LogOutcome.objects.bulk_create(
            LogOutcome(log_id=pk, outcome="retrying" if message.startswith(RETRIED) else "failed")
            for pk, message in batch
        )


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0002_limits"),
        ("post_office", "0014_alter_email_recipient_delivery_status_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="LogOutcome",
            fields=[
                (
                    "log",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="outcome",
                        serialize=False,
                        to="post_office.log",
                    ),
                ),
                (
                    "outcome",
                    models.CharField(
                        choices=[("retrying", "retrying"), ("failed", "failed")], max_length=16
                    ),
                ),
            ],
        ),
        migrations.RunPython(outcome_from_message, migrations.RunPython.noop),
    ]
