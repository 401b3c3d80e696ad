from django.db import migrations, models

from ..lanes import lane_of


def put_mail_in_its_lane(apps, schema_editor):
    """Mail written before the lanes: bulk if its priority or headers say so."""
    Delivery = apps.get_model("delivery", "Delivery")
    bulk = [
        email_id
        for email_id, priority, headers in Delivery.objects.values_list(
            "email_id", "email__priority", "email__headers"
        ).iterator()
        if lane_of(priority, headers) == "bulk"
    ]
    for start in range(0, len(bulk), 500):
        Delivery.objects.filter(email_id__in=bulk[start : start + 500]).update(lane="bulk")


class Migration(migrations.Migration):
    dependencies = [("delivery", "0001_delivery")]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="lane",
            field=models.CharField(
                choices=[("transactional", "transactional"), ("bulk", "bulk")],
                default="transactional",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="fault",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "none"),
                    ("refused", "refused"),
                    ("passing", "passing"),
                    ("setup", "the site's setup"),
                    ("throttled", "throttled"),
                ],
                default="",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="state",
            field=models.CharField(
                choices=[
                    ("queued", "queued"),
                    ("scheduled", "scheduled"),
                    ("handed_off", "handed off"),
                    ("sending", "sending"),
                    ("retrying", "retrying"),
                    ("held", "held"),
                    ("sent", "sent"),
                    ("failed", "failed"),
                    ("expired", "expired"),
                ],
                default="queued",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="Pace",
            fields=[
                ("mailer", models.CharField(max_length=64, primary_key=True, serialize=False)),
                (
                    "rate",
                    models.FloatField(
                        help_text="Mails a second now allowed; empty: no limit.", null=True
                    ),
                ),
                ("next_free", models.FloatField(default=0.0)),
                ("paused_until", models.FloatField(default=0.0)),
                ("pause_reason", models.TextField(blank=True)),
                ("cut_at", models.FloatField(default=0.0)),
                ("raised_at", models.FloatField(default=0.0)),
                ("counted_since", models.FloatField(default=0.0)),
                ("accepted", models.PositiveIntegerField(default=0)),
                ("accepted_rate", models.FloatField(default=0.0)),
                ("throttled", models.PositiveIntegerField(default=0)),
                ("throttled_hour", models.FloatField(default=0.0)),
                ("connections", models.PositiveIntegerField(null=True)),
                ("connections_until", models.FloatField(default=0.0)),
            ],
        ),
        migrations.CreateModel(
            name="Usage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("mailer", models.CharField(max_length=64)),
                ("hour", models.DateTimeField()),
                ("sent", models.PositiveIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("mailer", "hour"), name="usage_per_hour")
                ]
            },
        ),
        migrations.RunPython(put_mail_in_its_lane, migrations.RunPython.noop),
    ]
