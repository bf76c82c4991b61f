"""Loads the benchmark data set into PostgreSQL: 10 organizations (through the same bootstrap
and model methods the product uses), then 1,000,000 approval requests, their reviews, one audit
entry per request and the per-status totals, generated inside PostgreSQL with
`INSERT ... SELECT generate_series` so no row travels through Python.

Run by bench/run.py; alone: `DATABASE_URL=postgres://.../flagship_bench python bench/load.py`.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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

AUDIT_SQL = """
INSERT INTO audit_auditentry (id, org_id, actor_id, actor_type, action, resource_type,
                              resource_id, before_state, after_state, metadata, created_at)
SELECT gen_random_uuid(), a.org_id, a.requestor_id, 'user', 'approval.created',
       'approval_request', a.id::text, NULL,
       jsonb_build_object('status', 'pending', 'change_type', a.change_type,
                          'payload', a.payload, 'base_state', a.base_state),
       jsonb_build_object('approval_id', a.id::text, 'source', 'api', 'ip', '127.0.0.1'),
       a.created_at
FROM approvals_approvalrequest a;
"""


def bulk_load() -> None:
    """Two cores: the requests are written by two connections at once, then the reviews and the
    audit entries side by side."""
    from django.db import connection

    from approvals.models import StatusTotal
    from flagship.models import Organization

    with connection.cursor() as cursor:
        cursor.execute(TARGETS_SQL)
    half = REQUESTS // 2
    shape = {"orgs": ORGS, "targets": 3 * FLAGS_PER_ORG, "spacing": SPACING_SECONDS}
    in_parallel(
        ("approval requests 1/2", APPROVALS_SQL, {**shape, "first": 1, "last": half}),
        ("approval requests 2/2", APPROVALS_SQL, {**shape, "first": half + 1, "last": REQUESTS}),
    )
    in_parallel(("reviews", REVIEWS_SQL, None), ("audit entries", AUDIT_SQL, None))
    started = time.monotonic()
    for org_id in Organization.objects.values_list("pk", flat=True):
        StatusTotal.objects.recount(org_id)
    log(f"status totals in {time.monotonic() - started:.1f}s")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_targets")
        started = time.monotonic()
        cursor.execute("ANALYZE")
    log(f"analyze in {time.monotonic() - started:.1f}s")


def in_parallel(*statements) -> None:
    with ThreadPoolExecutor(len(statements)) as pool:
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
    log(f"{what}: {rows} rows in {time.monotonic() - started:.1f}s")


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
