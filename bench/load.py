"""Loads the benchmark data set into PostgreSQL: 10 organizations (through the same bootstrap
and model methods the product uses), then 1,000,000 approval requests and their reviews,
generated inside PostgreSQL with `INSERT ... SELECT generate_series` so no row travels through
Python; one audit entry per request, hash-chained here and written with COPY; and the
per-status totals.

Run by bench/run.py; alone: `DATABASE_URL=postgres://.../flagship_bench python bench/load.py`.
"""

import hashlib
import multiprocessing
import os
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import orjson

ORGS = 10
FLAGS_PER_ORG = 20
REQUESTS = 1_000_000
# Seconds between two consecutive generated requests; 1M requests cover about 35 days.
SPACING_SECONDS = 3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagship.settings")


def log(message: str) -> None:
    print(f"[load] {message}", flush=True)


def create_organizations():
    """Orgs, members, flags and states through the product's own code: a few hundred rows."""
    from django.conf import settings

    from flags.models import Flag, FlagType
    from flagship.bootstrap import create_organization
    from flagship.models import Membership, Role, User

    # Hashing 30 passwords with the production hasher would take longer than the bulk load.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    for number in range(ORGS):
        org, owner, project = create_organization(
            name=f"Bench {number}",
            slug=f"bench-{number}",
            owner_email=f"owner{number}@bench.test",
            owner_password="bench-password",
        )
        for role in (Role.ADMIN, Role.DEVELOPER):
            user = User.objects.create_user(
                email=f"{role}{number}@bench.test", password="bench-password", name=role
            )
            Membership.objects.create(user=user, org=org, role=role)
        for flag_number in range(FLAGS_PER_ORG):
            Flag.create_audited(
                by=owner,
                project=project,
                key=f"flag-{flag_number:02d}",
                name=f"Flag {flag_number}",
                flag_type=FlagType.BOOLEAN,
                default_value=False,
            )


# One row per (org, flag, environment) the generated requests cycle through.
TARGETS_SQL = """
DROP TABLE IF EXISTS bench_targets;
CREATE UNLOGGED TABLE bench_targets AS
SELECT (dense_rank() OVER (ORDER BY o.slug) - 1)::int AS org_no,
       (row_number() OVER (PARTITION BY o.id ORDER BY f.key, e.slug) - 1)::int AS target_no,
       o.id AS org_id, p.id AS project_id, f.id AS flag_id, e.id AS environment_id,
       dev.user_id AS requestor_id, adm.user_id AS reviewer_id
FROM flagship_organization o
JOIN flags_project p ON p.org_id = o.id
JOIN flags_flag f ON f.project_id = p.id
JOIN flags_environment e ON e.project_id = p.id
JOIN flagship_membership dev ON dev.org_id = o.id AND dev.role = 'developer'
JOIN flagship_membership adm ON adm.org_id = o.id AND adm.role = 'admin'
WHERE o.slug LIKE 'bench-%';
CREATE INDEX ON bench_targets (org_no, target_no);
ANALYZE bench_targets;
"""

# Statuses by share: 30% pending, 40% applied, 15% rejected, 10% cancelled, 5% approved
# (scheduled in the future). Request n belongs to org n % 10 and is n*3 s older than now.
APPROVALS_SQL = """
INSERT INTO approvals_approvalrequest (
    id, org_id, project_id, flag_id, environment_id, requestor_id, change_type, payload,
    description, status, required_approvals, approvals_count, base_state, base_version,
    execution_date, reviewer_id, review_note, reviewed_at, applied_at, created_at, updated_at)
SELECT gen_random_uuid(), t.org_id, t.project_id, t.flag_id, t.environment_id, t.requestor_id,
       'enable', '{"enabled": true}'::jsonb, 'bench request ' || g.n, g.status, 1,
       CASE WHEN g.status IN ('applied', 'approved') THEN 1 ELSE 0 END,
       '{"enabled": false}'::jsonb, 1,
       CASE WHEN g.status = 'approved' THEN now() + interval '30 days' END,
       CASE WHEN g.status IN ('applied', 'approved', 'rejected') THEN t.reviewer_id END,
       '',
       CASE WHEN g.status IN ('applied', 'approved', 'rejected')
            THEN g.created_at + interval '1 hour' END,
       CASE WHEN g.status = 'applied' THEN g.created_at + interval '1 hour' END,
       g.created_at, g.created_at
FROM (
    SELECT n, org_no, k %% %(targets)s AS target_no, created_at,
           CASE WHEN mix < 6 THEN 'pending'
                WHEN mix < 14 THEN 'applied'
                WHEN mix < 17 THEN 'rejected'
                WHEN mix < 19 THEN 'cancelled'
                ELSE 'approved' END AS status
    FROM (
        -- k numbers an org's requests; mix spreads statuses evenly over orgs and targets.
        SELECT n, n %% %(orgs)s AS org_no, n / %(orgs)s AS k,
               (n / %(orgs)s + n / %(orgs)s / %(targets)s) %% 20 AS mix,
               now() - make_interval(secs => n * %(spacing)s) AS created_at
        FROM generate_series(%(first)s, %(last)s) AS n
    ) numbered
) g
JOIN bench_targets t ON t.org_no = g.org_no AND t.target_no = g.target_no;
"""

REVIEWS_SQL = """
INSERT INTO approvals_review (id, approval_request_id, reviewer_id, action, note, is_current,
                              created_at)
SELECT gen_random_uuid(), a.id, a.reviewer_id,
       CASE WHEN a.status = 'rejected' THEN 'reject' ELSE 'approve' END, '', true, a.reviewed_at
FROM approvals_approvalrequest a
WHERE a.reviewer_id IS NOT NULL;
"""

# The product's approval.created entry for each request, oldest first per organization, so the
# loader can extend each organization's hash chain (bench/load.py writes the hashes).
AUDIT_SOURCE_SQL = """
SELECT a.org_id, a.id, a.requestor_id, a.created_at, f.key, e.slug
FROM approvals_approvalrequest a
JOIN flags_flag f ON f.id = a.flag_id
JOIN flags_environment e ON e.id = a.environment_id
WHERE a.org_id = ANY(%s)
ORDER BY a.org_id, a.created_at, a.id
"""
AUDIT_COLUMNS = (
    "id", "org_id", "actor_id", "actor_type", "action", "resource_type", "resource_id",
    "before_state", "after_state", "metadata", "created_at", "sequence", "previous_hash",
    "entry_hash",
)  # fmt: skip


def approval_created_fields(org_id, approval_id, requestor_id, created_at, flag_key, env_slug):
    """What `ApprovalRequest.propose` records for a generated request, as `hash_entry` reads an
    entry (ids as strings, the time in UTC), not yet chained."""
    return {
        "id": str(uuid.uuid4()),
        "org_id": str(org_id),
        "sequence": None,
        "actor_id": str(requestor_id),
        "actor_type": "user",
        "action": "approval.created",
        "resource_type": "approval_request",
        "resource_id": str(approval_id),
        "before_state": None,
        "after_state": {
            "status": "pending",
            "flag_key": flag_key,
            "environment": env_slug,
            "change_type": "enable",
            "payload": {"enabled": True},
            "base_state": {"enabled": False},
            "required_approvals": 1,
            "approvals_count": 0,
            "execution_date": None,
        },
        "metadata": {"ip": "127.0.0.1", "source": "api", "approval_id": str(approval_id)},
        "created_at": created_at.astimezone(UTC).isoformat(),
        "previous_hash": None,
    }


def fast_entry_hash(fields: dict) -> str:
    """`audit.models.hash_entry` for fields that are already plain JSON (ASCII strings, ints,
    no floats or dates): for those, orjson with sorted keys writes the same canonical text
    as hash_entry's json.dumps, several times faster. Checked against hash_entry on the first
    entry of every organization."""
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def as_audit_entry(fields: dict):
    from audit.models import AuditEntry

    return AuditEntry(**{**fields, "created_at": datetime.fromisoformat(fields["created_at"])})


def load_audit_entries(org_ids: list) -> int:
    """One approval.created entry per request of these organizations, appended to each one's
    hash chain (after the entries the organizations' setup wrote), so `verify_audit` holds on
    the loaded data. The hashes are computed here; the rows go in through COPY."""
    from django.db import connection, transaction

    from audit.models import AuditEntry, hash_entry

    # Read before COPY starts: the connection can run nothing else until it ends.
    heads = {}
    for org_id in org_ids:
        head = AuditEntry.objects.chain_of(org_id).last()
        heads[org_id] = (head.sequence, head.entry_hash) if head else (0, "")
    checked = set()
    rows = 0
    try:
        with transaction.atomic(), connection.cursor() as read, connection.cursor() as write:
            write.execute("SET LOCAL session_replication_role = replica")
            read.execute(AUDIT_SOURCE_SQL, [org_ids])
            sources = read.fetchall()
            columns = ", ".join(AUDIT_COLUMNS)
            with write.cursor.copy(f"COPY audit_auditentry ({columns}) FROM STDIN") as copy:
                for source in sources:
                    fields = approval_created_fields(*source)
                    org_id = source[0]
                    sequence, previous_hash = heads[org_id]
                    fields["sequence"] = sequence + 1
                    fields["previous_hash"] = previous_hash
                    entry_hash = fast_entry_hash(fields)
                    if org_id not in checked:
                        assert entry_hash == hash_entry(as_audit_entry(fields)), "hash differs"
                        checked.add(org_id)
                    heads[org_id] = (sequence + 1, entry_hash)
                    copy.write_row(
                        (
                            fields["id"], org_id, source[2], "user", fields["action"],
                            fields["resource_type"], fields["resource_id"], None,
                            orjson.dumps(fields["after_state"]).decode(),
                            orjson.dumps(fields["metadata"]).decode(),
                            source[3], sequence + 1, previous_hash, entry_hash,
                        )
                    )  # fmt: skip
                    rows += 1
    finally:
        connection.close()
    return rows


def bulk_load() -> None:
    """Two cores: the requests are written by two connections at once, then the reviews and the
    audit entries side by side, into tables stripped of their secondary indexes, which are built
    at the end."""
    from django.db import connection, connections

    from approvals.models import StatusTotal
    from flagship.models import Organization

    with connection.cursor() as cursor:
        cursor.execute(TARGETS_SQL)
    index_definitions = drop_secondary_indexes(BULK_TABLES)
    half = REQUESTS // 2
    shape = {"orgs": ORGS, "targets": 3 * FLAGS_PER_ORG, "spacing": SPACING_SECONDS}
    in_parallel(
        ("approval requests 1/2", APPROVALS_SQL, {**shape, "first": 1, "last": half}),
        ("approval requests 2/2", APPROVALS_SQL, {**shape, "first": half + 1, "last": REQUESTS}),
    )
    # The audit entries are CPU-bound Python: two processes, each extending five orgs' chains.
    org_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    started = time.monotonic()
    connections.close_all()  # the forked processes open their own
    with (
        ThreadPoolExecutor(1) as threads,
        ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as processes,
    ):
        reviews = threads.submit(run_statement, "reviews", REVIEWS_SQL, None)
        audit_rows = sum(processes.map(load_audit_entries, [org_ids[0::2], org_ids[1::2]]))
        log(f"audit entries: {audit_rows} rows, hash-chained, in {time.monotonic() - started:.1f}s")
        reviews.result()
    started = time.monotonic()
    in_parallel(*((f"index {name}", definition, None) for name, definition in index_definitions))
    log(f"{len(index_definitions)} indexes built in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    for org_id in Organization.objects.values_list("pk", flat=True):
        StatusTotal.objects.recount(org_id)
    log(f"status totals in {time.monotonic() - started:.1f}s")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_targets")
        started = time.monotonic()
        # VACUUM too: it sets the fresh rows' hint bits and visibility map, as they are on a
        # database in service. Otherwise the first scenario measured pays for setting them,
        # and autovacuum runs on the loaded tables during the measurement.
        cursor.execute("VACUUM (ANALYZE)")
    log(f"vacuum and analyze in {time.monotonic() - started:.1f}s")


# The tables the bulk load fills, whose indexes are built once afterwards.
BULK_TABLES = ("approvals_approvalrequest", "approvals_review", "audit_auditentry")


def drop_secondary_indexes(tables) -> list[tuple[str, str]]:
    """Drops the indexes of these tables that back no constraint (the primary keys and unique
    constraints stay) and returns (name, definition) of each: building an index once over the
    loaded rows is one sort, far cheaper than updating it row by row during the load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname",
            [list(tables)],
        )
        definitions = cursor.fetchall()
        for name, _definition in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
    return definitions


def in_parallel(*statements) -> None:
    """Runs the statements on two connections (the machine's cores), each in its own
    transaction."""
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(run_statement, *statement) for statement in statements]:
            future.result()


def run_statement(what: str, sql: str, params) -> None:
    """One statement in its own transaction on this thread's own connection. Every id is taken
    from rows that exist, so the per-row foreign-key triggers (which Django defers to COMMIT,
    where they took a minute) are skipped."""
    from django.db import connection, transaction

    started = time.monotonic()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params)
            rows = cursor.rowcount
    finally:
        connection.close()
    counted = f": {rows} rows" if rows >= 0 else ""  # CREATE INDEX counts none
    log(f"{what}{counted} in {time.monotonic() - started:.1f}s")


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    started = time.monotonic()
    call_command("migrate", "--noinput", verbosity=0)
    log(f"migrated in {time.monotonic() - started:.1f}s")
    with transaction.atomic():
        create_organizations()
    log(f"organizations, members and flags in {time.monotonic() - started:.1f}s")
    bulk_load()
    log(f"loaded in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
