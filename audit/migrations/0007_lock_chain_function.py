"""audit_lock_chain(org): locks an organization's audit chain and reads its head, in one round
trip to PostgreSQL. See AuditEntryQuerySet.lock_chain."""

from django.db import migrations

# The head query is the one AuditEntryQuerySet.lock_chain runs on SQLite: change them together.
# VOLATILE: each statement inside takes a fresh snapshot (READ COMMITTED), so the head is read
# after the lock is granted and shows the entry the previous holder of the lock committed.
CREATE = """
CREATE OR REPLACE FUNCTION audit_lock_chain(org uuid, OUT sequence bigint, OUT entry_hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM flagship_organization WHERE id = org FOR NO KEY UPDATE;
    SELECT entry.sequence, entry.entry_hash INTO sequence, entry_hash
    FROM audit_auditentry entry WHERE entry.org_id = org ORDER BY entry.sequence DESC LIMIT 1;
END
$$
"""
DROP = "DROP FUNCTION IF EXISTS audit_lock_chain(uuid)"


def on_postgresql(statement):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_drop_index_covered_by_composite")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
