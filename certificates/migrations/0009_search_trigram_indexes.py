"""Trigram indexes for searching certificates by name, on PostgreSQL.

The list's and the API's search is ``icontains`` on the common name and the
SANs, which Django writes as ``UPPER(column::text) LIKE UPPER('%text%')``: a
pattern no B-tree can serve, so every search read every certificate. A GIN
index of the same expression with ``gin_trgm_ops`` (pg_trgm) serves it for any
text of three characters or more.

``pg_trgm`` ships with PostgreSQL and is a trusted extension (13 and later):
the database's owner may create it without being a superuser. If it cannot be
created, the search still works, by reading every row, so the migration says so
and goes on rather than stopping a deployment. Other databases (SQLite, for
development) have no such index and do not need one.
"""

import sys

from django.db import DatabaseError, migrations, transaction

TABLE = "certificates_certificate"
INDEXES = {
    "cert_name_trgm_idx": 'UPPER("common_name"::text)',
    "cert_sans_trgm_idx": 'UPPER("sans"::text)',
}


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):  # a savepoint: a refusal is not fatal
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        sys.stderr.write(
            f"  Note: the pg_trgm extension could not be created ({exc}).\n"
            "  Searching certificates by name works, but reads every certificate. To index it,\n"
            "  run CREATE EXTENSION pg_trgm; as a superuser, then: manage.py migrate certificates\n"
            "  0008 && manage.py migrate\n")
        return
    for name, expression in INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{TABLE}" USING gin ({expression} gin_trgm_ops)')


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
    # The extension stays: other things may use it, and it costs nothing unused.


class Migration(migrations.Migration):

    dependencies = [
        ("certificates", "0008_deploy_request_awaited"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
