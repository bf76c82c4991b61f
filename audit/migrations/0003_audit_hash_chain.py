from django.db import migrations, models


def chain_existing_entries(apps, schema_editor):
    """Links the entries written before the chain existed, per org, oldest first."""
    from audit.models import hash_entry

    AuditEntry = apps.get_model("audit", "AuditEntry")
    org_ids = AuditEntry.objects.values_list("org_id", flat=True).distinct()
    for org_id in org_ids:
        previous_hash = ""
        entries = AuditEntry.objects.filter(org_id=org_id).order_by("created_at", "id")
        for sequence, entry in enumerate(entries.iterator(), start=1):
            entry.sequence = sequence
            entry.previous_hash = previous_hash
            entry.entry_hash = hash_entry(entry)
            entry.save(update_fields=["sequence", "previous_hash", "entry_hash"])
            previous_hash = entry.entry_hash


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="sequence",
            field=models.PositiveBigIntegerField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditentry",
            name="previous_hash",
            field=models.CharField(blank=True, editable=False, max_length=64, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditentry",
            name="entry_hash",
            field=models.CharField(editable=False, max_length=64, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing_entries, migrations.RunPython.noop),
    ]
