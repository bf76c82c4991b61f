"""The audit log is append-only in the database and hash-chained per organization."""

import threading
import uuid
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEntry, hash_entry, record
from flagship.models import Organization


def chain(org) -> list[AuditEntry]:
    return list(AuditEntry.objects.chain_of(org.pk))


def allow_tampering():
    """Switches the append-only trigger off for the rest of the test's transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Deferred foreign-key checks must run first: ALTER TABLE refuses pending events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER USER")


def test_each_entry_links_to_the_previous_entry_of_its_org(acme, owner, other_org):
    record(org_id=acme.org.pk, actor=owner, action="test.done", resource=acme.project)

    entries = chain(acme.org)
    assert [entry.sequence for entry in entries] == list(range(1, len(entries) + 1))
    assert entries[0].previous_hash == ""
    for previous, entry in pairwise(entries):
        assert entry.previous_hash == previous.entry_hash
        assert entry.entry_hash == hash_entry(entry)
    # The other org's chain starts on its own.
    assert chain(other_org.org)[0].previous_hash == ""


def test_hash_survives_the_round_trip_through_the_database(acme, owner):
    entry = record(
        org_id=acme.org.pk,
        actor=owner,
        action="test.values",
        resource=acme.flag,
        after={"rollout": 1e16, "ratio": 0.1, "text": "ünïcode ✓", "nested": [{"b": 1, "a": None}]},
        # Values JSON has no type for, an integer key, and a number beyond 64 bits.
        before={"when": datetime(2026, 4, 1, 9, 0, 0, 123456, tzinfo=UTC), 7: uuid.uuid4()},
        metadata={"big": 2**70},
    )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert entry.entry_hash == hash_entry(stored)


def test_verify_audit_reports_ok_for_an_intact_chain(acme, other_org, capsys):
    call_command("verify_audit")

    out = capsys.readouterr().out
    assert "acme: OK" in out
    assert "globex: OK" in out


def test_verify_audit_names_the_entry_whose_contents_were_changed(acme, owner, capsys):
    record(org_id=acme.org.pk, actor=owner, action="test.first", resource=acme.project)
    tampered = record(org_id=acme.org.pk, actor=owner, action="test.second", resource=acme.project)
    record(org_id=acme.org.pk, actor=owner, action="test.third", resource=acme.project)
    allow_tampering()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET action = 'test.innocent' WHERE id = %s", [tampered.pk.hex]
        )

    with pytest.raises(CommandError, match="acme"):
        call_command("verify_audit", "--org", "acme")

    err = capsys.readouterr().err
    assert f"entry {tampered.pk}" in err
    assert "entry_hash does not match" in err


def test_verify_audit_detects_an_entry_removed_from_the_middle(acme, owner, capsys):
    removed = record(org_id=acme.org.pk, actor=owner, action="test.gone", resource=acme.project)
    following = record(org_id=acme.org.pk, actor=owner, action="test.after", resource=acme.project)
    allow_tampering()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [removed.pk.hex])

    with pytest.raises(CommandError):
        call_command("verify_audit", "--org", "acme")

    assert f"entry {following.pk}" in capsys.readouterr().err


def test_verify_audit_refuses_an_unknown_org(db):
    with pytest.raises(CommandError, match="no organization with slug 'nope'"):
        call_command("verify_audit", "--org", "nope")


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditentry SET action = 'rewritten' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ],
)
def test_database_refuses_to_change_or_delete_an_audit_row(acme, owner, statement):
    entry = record(org_id=acme.org.pk, actor=owner, action="test.kept", resource=acme.project)

    with (
        pytest.raises(DatabaseError, match="Cannot update or delete"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [entry.pk.hex])

    assert AuditEntry.objects.get(pk=entry.pk).action == "test.kept"


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_unbroken_chain(acme, owner):
    writers, entries_each = 8, 10
    barrier = threading.Barrier(writers)
    errors = []

    def write(number):
        try:
            barrier.wait()
            for index in range(entries_each):
                with transaction.atomic():
                    record(
                        org_id=acme.org.pk,
                        actor=owner,
                        action=f"test.writer_{number}_{index}",
                        resource=acme.project,
                    )
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    entries = chain(Organization.objects.get(pk=acme.org.pk))
    written = [entry for entry in entries if entry.action.startswith("test.writer_")]
    assert len(written) == writers * entries_each
    assert [entry.sequence for entry in entries] == list(range(1, len(entries) + 1))
    for previous, entry in pairwise(entries):
        assert entry.previous_hash == previous.entry_hash
    call_command("verify_audit", "--org", "acme")
