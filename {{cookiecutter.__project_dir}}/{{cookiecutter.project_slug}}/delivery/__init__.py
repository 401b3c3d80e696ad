"""The mail path, in the order a mail meets it:

outbox.py    send_mail() (or any post_office door) writes the row and its delivery state
handoff.py   after the commit, a thread publishes a task naming the mail to RabbitMQ
worker.py    in a Celery worker: take the mail, build it from the row, send it
state.py     every change of state (queued, handed off, sending, sent, retrying, failed)
sweeper.py   every minute: hand out what is due (scheduled, retries, left behind)

post_office_replacements.py: post_office's functions that would send in the calling process
"""
