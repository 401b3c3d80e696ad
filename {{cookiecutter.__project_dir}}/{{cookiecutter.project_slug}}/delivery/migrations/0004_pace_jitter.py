from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0003_log_outcome"),
    ]

    operations = [
        migrations.AddField(
            model_name="pace",
            name="jitter",
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name="pace",
            name="jitter_at",
            field=models.FloatField(default=0.0),
        ),
    ]
