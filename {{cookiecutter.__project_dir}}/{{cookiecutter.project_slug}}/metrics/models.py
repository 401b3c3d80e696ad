from django.db import models


class Tally(models.Model):
    """A count that any process adds to (metrics/tally.py), read by every scrape: one row
    per metric and set of labels."""

    name = models.CharField(max_length=64)
    labels = models.CharField(max_length=200, blank=True, help_text="name=value,… sorted")
    value = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "labels"], name="one_tally_per_series")
        ]

    def __str__(self):
        return f"{self.name}({self.labels}) = {self.value:g}"


class Heartbeat(models.Model):
    """A worker process that consumes mail, and when it last said so."""

    worker = models.CharField(max_length=255, unique=True)
    seen = models.DateTimeField()

    def __str__(self):
        return f"{self.worker} at {self.seen}"
