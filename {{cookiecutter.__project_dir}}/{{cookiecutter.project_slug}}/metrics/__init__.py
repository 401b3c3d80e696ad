"""/metrics: the site's mail as Prometheus reads it, from the rows every process shares.

models.py      Tally (counts every process adds to), Heartbeat (a worker that lives)
tally.py       the worker's counts of attempts, kept in memory and added to Tally every few
               seconds; the heartbeat
collector.py   what a scrape reads: a few indexed queries, turned into metric families
views.py       GET /metrics for monitoring (HEALTH_TOKEN) and staff
"""
