"""Keyset cursors on newest-first lists: stable order, no duplicates or gaps, clean errors."""

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalRequest
from flagship.pagination import encode_cursor
from tests.approvals.helpers import propose_many


def walk(client, url: str, limit: int, between_pages=None) -> list[str]:
    """Every id of the list, following next_cursor page by page."""
    ids, cursor = [], None
    while True:
        page_url = f"{url}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(page_url)
        assert response.status_code == 200, response.json()
        body = response.json()
        ids += [row["id"] for row in body["data"]]
        assert body["has_more"] == (body["next_cursor"] is not None)
        if not body["has_more"]:
            return ids
        cursor = body["next_cursor"]
        if between_pages:
            between_pages()


@pytest.mark.django_db
def test_cursor_pages_list_every_request_once_newest_first(acme, developer, admin, api):
    requests = propose_many(acme, developer, 12)

    ids = walk(api(admin), "/v1/approvals", limit=5)

    assert ids == [str(request.pk) for request in reversed(requests)]


@pytest.mark.django_db
def test_cursor_order_is_stable_when_requests_share_a_timestamp(acme, developer, admin, api):
    requests = propose_many(acme, developer, 9)
    ApprovalRequest.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    expected = sorted((str(request.pk) for request in requests), reverse=True)

    ids = walk(api(admin), "/v1/approvals", limit=2)

    assert sorted(ids, reverse=True) == expected
    assert len(set(ids)) == len(ids) == 9


@pytest.mark.django_db
def test_requests_created_between_page_fetches_cause_no_duplicates_or_gaps(
    acme, developer, admin, api
):
    existing = propose_many(acme, developer, 10)
    client = api(admin)

    ids = walk(
        client, "/v1/approvals", limit=3, between_pages=lambda: propose_many(acme, developer, 2)
    )

    assert ids == [str(request.pk) for request in reversed(existing)]


@pytest.mark.django_db
def test_cursor_page_reports_the_total_of_the_whole_list(acme, developer, admin, api):
    propose_many(acme, developer, 7)
    client = api(admin)
    first = client.get("/v1/approvals?limit=5").json()

    second = client.get(f"/v1/approvals?limit=5&cursor={first['next_cursor']}").json()

    assert first["total"] == second["total"] == 7
    assert len(second["data"]) == 2
    assert second["has_more"] is False
    assert second["next_cursor"] is None


@pytest.mark.django_db
def test_offset_keeps_working_beside_cursors(acme, developer, admin, api):
    requests = propose_many(acme, developer, 6)

    body = api(admin).get("/v1/approvals?limit=2&offset=2").json()

    assert [row["id"] for row in body["data"]] == [str(r.pk) for r in reversed(requests)][2:4]
    assert body["offset"] == 2
    assert body["total"] == 6
    assert body["has_more"] is True


def encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        encoded("no separator"),
        encoded("2026-01-01T00:00:00+00:00|not-a-uuid"),
        encoded("2026-01-01T00:00:00|0d5c2b9e-6f7e-4a52-9d1c-5c8f2b1e3a40"),
        encoded("yesterday|0d5c2b9e-6f7e-4a52-9d1c-5c8f2b1e3a40"),
        "%FF%FE",
    ],
)
def test_bad_cursor_returns_400(acme, admin, api, cursor):
    response = api(admin).get(f"/v1/approvals?cursor={cursor}")

    assert response.status_code == 400
    assert response.json()["fields"] == {"cursor": ["Not a valid cursor."]}


@pytest.mark.django_db
def test_cursor_on_a_list_without_newest_first_order_returns_400(admin, api):
    response = api(admin).get("/v1/members?cursor=abc")

    assert response.status_code == 400
    assert "cursor" in response.json()["fields"]


@pytest.mark.django_db
def test_audit_list_pages_by_cursor_too(acme, developer, admin, api):
    propose_many(acme, developer, 4)
    client = api(admin)

    audit_ids = walk(client, "/v1/audit", limit=3)

    assert len(audit_ids) == len(set(audit_ids)) == client.get("/v1/audit").json()["total"]


@pytest.mark.django_db
def test_cursor_pages_keep_the_lists_filters(acme, developer, admin, api):
    production, staging = [], []
    for _ in range(4):  # interleaved, so that staging requests lie between production ones
        production += propose_many(acme, developer, 1)
        staging += propose_many(acme, developer, 1, environment=acme.staging)
    client, url = api(admin), f"/v1/approvals?env_id={acme.production.pk}&limit=1"

    ids, body = [], client.get(url).json()
    ids += [row["id"] for row in body["data"]]
    while body["next_cursor"]:
        body = client.get(f"{url}&cursor={body['next_cursor']}").json()
        ids += [row["id"] for row in body["data"]]

    assert ids == [str(request.pk) for request in reversed(production)]


def copy_requests(template, count: int) -> None:
    """`count` copies of the request, created at random times of the last twelve days, in one
    statement (the ORM would take minutes for the rows a planner test needs)."""
    fields = [field.column for field in ApprovalRequest._meta.concrete_fields]
    copied = ", ".join(f'"{column}"' for column in fields if column not in ("id", "created_at"))
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{ApprovalRequest._meta.db_table}" ("id", "created_at", {copied}) '
            f"SELECT gen_random_uuid(), now() - random() * interval '12 days', {copied} "
            f'FROM "{ApprovalRequest._meta.db_table}", generate_series(1, %s) WHERE "id" = %s',
            [count, template.pk],
        )
        cursor.execute(f'ANALYZE "{ApprovalRequest._meta.db_table}"')


def nodes(plan: dict) -> list[dict]:
    """A plan's nodes, depth first."""
    return [plan] + [node for child in plan.get("Plans", []) for node in nodes(child)]


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_the_planner_sees_no_cursor_so_one_generic_plan_serves_every_page(
    acme, developer, admin, api
):
    """Every cursor page is the same prepared statement with other values. Were the values
    visible to the planner, each cursor would get estimates of its own (the rows after a recent
    cursor are most of the org's, after an old one few), each plan would look cheaper than the
    generic one, and PostgreSQL would plan every page anew: a sixth of a page's database time
    at a million requests."""
    (template,) = propose_many(acme, developer, 1)
    copy_requests(template, 2000)
    client = api(admin)
    recent = client.get("/v1/approvals?limit=50").json()["next_cursor"]
    oldest = ApprovalRequest.objects.order_by("created_at", "id")[10]
    old = encode_cursor(oldest.created_at, oldest.pk)

    plans = []
    for cursor in (recent, old):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/v1/approvals?limit=50&cursor={cursor}").status_code == 200
        (page_statement,) = [q["sql"] for q in queries if q["sql"].startswith('WITH "page"')]
        with connection.cursor() as db:
            db.execute(f"EXPLAIN (FORMAT JSON) {page_statement}")
            plans.append(nodes(db.fetchone()[0][0]["Plan"]))

    def estimates(plan):
        return [(node["Node Type"], node["Total Cost"], node["Plan Rows"]) for node in plan]

    assert estimates(plans[0]) == estimates(plans[1])
    # The page starts where the index reaches the cursor; nothing is read to be filtered out.
    (page_scan,) = [node for node in plans[0] if node.get("Index Name") == "approval_org_created"]
    assert "ROW(created_at, id) < ROW(" in page_scan["Index Cond"]
    assert "Filter" not in page_scan


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_cursor_pages_run_their_prepared_statement_with_its_generic_plan(
    acme, developer, admin, api
):
    options = connection.settings_dict["OPTIONS"]
    if not options.get("server_side_binding"):
        pytest.skip("DATABASE_PREPARED_STATEMENTS is off: nothing is prepared")
    threshold = options["prepare_threshold"]
    (template,) = propose_many(acme, developer, 1)
    copy_requests(template, 1000)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # the session's connection prepared others before
    client, pages, cursor = api(admin), 20, None
    for _ in range(pages):
        body = client.get("/v1/approvals?limit=50" + (f"&cursor={cursor}" if cursor else ""))
        cursor = body.json()["next_cursor"]

    with connection.cursor() as db:
        # The cursor pages' statement: the page statement with parameters past the org's.
        db.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            """WHERE statement LIKE 'WITH "page"%%' AND statement LIKE '%%$2%%'"""
        )
        (generic_plans, custom_plans), *others = db.fetchall()
    assert others == []
    # 19 cursor pages: psycopg prepares the statement after `threshold` runs, PostgreSQL plans
    # the next five with their own values, then keeps the generic plan when it costs no more.
    assert (generic_plans, custom_plans) == (pages - 1 - threshold - 5, 5)
