"""Delete every mail of the site, with its log, delivery state and events; print nothing."""

import _site  # noqa: F401
from django.db import connection

KEPT = {"post_office_emailtemplate", "post_office_attachment"}  # templates and files stay
tables = [
    table
    for table in connection.introspection.table_names()
    if table.startswith(("post_office_", "delivery_", "recipients_")) and table not in KEPT
]
with connection.cursor() as cursor:
    if connection.vendor == "postgresql":
        cursor.execute(f"TRUNCATE {', '.join(tables)}")
    else:
        cursor.execute("PRAGMA foreign_keys = OFF")  # the rows that refer to each other all go
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute("PRAGMA foreign_keys = ON")
