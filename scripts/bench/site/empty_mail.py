"""Delete every mail of the site, with its log; print nothing."""

import _site  # noqa: F401
from django.db import connection
from post_office.models import Attachment, Email, Log

tables = [Log._meta.db_table, Attachment.emails.through._meta.db_table, Email._meta.db_table]
with connection.cursor() as cursor:
    if connection.vendor == "postgresql":
        cursor.execute(f"TRUNCATE {', '.join(tables)}")
    else:
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")
