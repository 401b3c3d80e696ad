import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

# post_office's status (sent 0, failed 1, queued 2, requeued 3, none: being sent) as a state.
STATES = {0: "sent", 1: "failed", 2: "queued", 3: "retrying", None: "sending"}


def record_existing_mail(apps, schema_editor):
    """Mail written before this app: its state from post_office's status, due for the sweeper."""
    Email = apps.get_model("post_office", "Email")
    Delivery = apps.get_model("delivery", "Delivery")
    now = timezone.now()
    for email in Email.objects.only("pk", "status", "number_of_retries").iterator():
        state = STATES.get(email.status, "queued")
        Delivery.objects.create(
            email_id=email.pk,
            state=state,
            due=None if state in ("sent", "failed") else now,
            changed=now,
            failed_attempts=email.number_of_retries or 0,
        )


class Migration(migrations.Migration):
    initial = True

    dependencies = [("post_office", "0014_alter_email_recipient_delivery_status_and_more")]

    operations = [
        migrations.CreateModel(
            name="Delivery",
            fields=[
                (
                    "email",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="delivery",
                        serialize=False,
                        to="post_office.email",
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "queued"),
                            ("scheduled", "scheduled"),
                            ("handed_off", "handed off"),
                            ("sending", "sending"),
                            ("retrying", "retrying"),
                            ("sent", "sent"),
                            ("failed", "failed"),
                            ("expired", "expired"),
                        ],
                        default="queued",
                        max_length=16,
                    ),
                ),
                ("due", models.DateTimeField(blank=True, null=True)),
                ("changed", models.DateTimeField()),
                ("version", models.PositiveIntegerField(default=0)),
                ("failed_attempts", models.PositiveIntegerField(default=0)),
                (
                    "fault",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "none"),
                            ("refused", "refused"),
                            ("passing", "passing"),
                            ("setup", "the site's setup"),
                        ],
                        default="",
                        max_length=8,
                    ),
                ),
                (
                    "reason",
                    models.TextField(blank=True, help_text="What the mail server or service said last."),
                ),
                ("refused", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "verbose_name_plural": "deliveries",
                "indexes": [models.Index(fields=["state", "due"], name="delivery_de_state_a6d8fc_idx")],
            },
        ),
        migrations.RunPython(record_existing_mail, migrations.RunPython.noop),
    ]
