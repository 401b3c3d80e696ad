import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("post_office", "0014_alter_email_recipient_delivery_status_and_more"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Recipient",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("address", models.CharField(max_length=254)),
                (
                    "provider",
                    models.CharField(
                        help_text="The email service, as anymail names it.", max_length=32
                    ),
                ),
                (
                    "message_id",
                    models.CharField(help_text="The service's id for the message.", max_length=255),
                ),
                ("last_event", models.CharField(blank=True, max_length=16)),
                ("last_event_at", models.DateTimeField(blank=True, null=True)),
                (
                    "last_said",
                    models.TextField(
                        blank=True, help_text="What the service said with that event."
                    ),
                ),
                ("bounced", models.BooleanField(default=False)),
                (
                    "email",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="recipients",
                        to="post_office.email",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Event",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(help_text="anymail's event type.", max_length=16)),
                ("at", models.DateTimeField(help_text="When it happened, as the service says.")),
                ("received", models.DateTimeField(auto_now_add=True)),
                ("description", models.TextField(blank=True)),
                ("mta_response", models.TextField(blank=True)),
                ("key", models.CharField(editable=False, max_length=64, unique=True)),
                (
                    "payload",
                    models.JSONField(default=dict, help_text="The event as the service posted it."),
                ),
                (
                    "recipient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="recipients.recipient",
                    ),
                ),
            ],
            options={
                "ordering": ["at", "pk"],
            },
        ),
        migrations.CreateModel(
            name="Suppression",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("address", models.CharField(help_text="Stored in lower case.", max_length=254)),
                (
                    "scope",
                    models.CharField(
                        choices=[("all", "all mail"), ("bulk", "bulk mail only")],
                        default="all",
                        max_length=4,
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("hard_bounce", "hard bounce"),
                            ("complaint", "complaint"),
                            ("unsubscribe", "unsubscribed at the service"),
                            ("one_click", "one-click unsubscribe"),
                            ("smtp_refusal", "refused by the mail server"),
                            ("by_hand", "by hand"),
                        ],
                        default="by_hand",
                        max_length=16,
                    ),
                ),
                (
                    "detail",
                    models.TextField(blank=True, help_text="What the service or server said."),
                ),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("lifted", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "event",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to="recipients.event",
                    ),
                ),
                (
                    "lifted_by",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name="recipient",
            constraint=models.UniqueConstraint(
                fields=("provider", "message_id", "address"), name="one_recipient_per_message"
            ),
        ),
        migrations.AddConstraint(
            model_name="suppression",
            constraint=models.UniqueConstraint(
                condition=models.Q(("lifted", None)),
                fields=("address", "scope"),
                name="one_active_suppression_per_address_and_scope",
            ),
        ),
    ]
