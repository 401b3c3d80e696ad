from django.db import migrations, models

import {{ cookiecutter.project_slug }}.recipients.models


class Migration(migrations.Migration):
    dependencies = [
        ("recipients", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="UnsubscribeLink",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "address",
                    models.CharField(
                        help_text="Stored in lower case.", max_length=254, unique=True
                    ),
                ),
                (
                    "token",
                    models.CharField(
                        default={{ cookiecutter.project_slug }}.recipients.models.new_token,
                        editable=False,
                        max_length=32,
                        unique=True,
                    ),
                ),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
