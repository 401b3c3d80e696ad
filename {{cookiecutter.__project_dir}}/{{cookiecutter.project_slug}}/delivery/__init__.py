"""The mail path, in the order a mail meets it:

outbox.py    send_mail() (or any post_office door) writes the row and its delivery state
handoff.py   after the commit, a thread publishes a task naming the mail to RabbitMQ
task.py      the task that carries it (django-celery-email's): its arguments, its retries
sender.py    in a Celery worker: take the mail, build it from the row, send it
state.py     every change of state (queued, handed off, sending, sent, retrying, failed)
sweeper.py   every minute: hand out what is due (scheduled, retries, left behind)

policy.py: when a mail is tried again or given up; answers.py: what a server's answer means.
post_office_replacements.py: post_office's functions that would send in the calling process
"""
