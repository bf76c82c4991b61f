"""List endpoints run a fixed number of queries whatever the page size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flags.models import Flag, FlagType
from tests.approvals.helpers import create_body, propose_many


def queries_for(client, url: str, expected_rows: int) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.json()
    assert len(response.json()["data"]) == expected_rows
    return len(captured)


def decide_some(requests, reviewer) -> None:
    """Reviews on some rows and closed statuses on others, so every prefetch has work to do."""
    for request in requests[::3]:
        request.approve(by=reviewer, ignore_conflicts=True)
    for request in requests[1::3]:
        request.reject(by=reviewer)


@pytest.mark.django_db
def test_approvals_list_runs_three_queries_for_5_or_40_rows(acme, developer, admin, api):
    decide_some(propose_many(acme, developer, 40), admin)
    client = api(admin)

    small = queries_for(client, "/v1/approvals?limit=5", 5)
    large = queries_for(client, "/v1/approvals?limit=40", 40)

    # auth, total (from the per-status totals), rows (with flag key, flag state and reviews)
    assert small == large == 3


@pytest.mark.django_db
def test_approvals_list_filtered_by_status_runs_a_constant_number_of_queries(
    acme, developer, admin, api
):
    propose_many(acme, developer, 40)
    client = api(admin)

    small = queries_for(client, "/v1/approvals?status=pending&limit=5", 5)
    large = queries_for(client, "/v1/approvals?status=pending&limit=40", 40)

    assert small == large == 3


@pytest.mark.django_db
def test_approvals_list_next_page_by_cursor_runs_the_same_queries_as_page_one(
    acme, developer, admin, api
):
    propose_many(acme, developer, 12)
    client = api(admin)
    first = client.get("/v1/approvals?limit=5").json()

    with CaptureQueriesContext(connection) as captured:
        second = client.get(f"/v1/approvals?limit=5&cursor={first['next_cursor']}")

    assert second.status_code == 200
    assert len(captured) == 3


@pytest.mark.django_db
def test_flag_approvals_list_runs_a_constant_number_of_queries(acme, developer, admin, api):
    decide_some(propose_many(acme, developer, 40), admin)
    client = api(admin)
    url = (
        f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}/environments/"
        f"{acme.production.pk}/approvals"
    )

    small = queries_for(client, f"{url}?limit=5", 5)
    large = queries_for(client, f"{url}?limit=40", 40)

    # auth, project, flag, environment, count, rows (with their reviews)
    assert small == large == 6


@pytest.mark.django_db
def test_audit_list_runs_a_constant_number_of_queries(acme, developer, admin, api):
    propose_many(acme, developer, 40)
    client = api(admin)

    small = queries_for(client, "/v1/audit?limit=5", 5)
    large = queries_for(client, "/v1/audit?limit=40", 40)

    assert small == large == 3  # auth, count, rows


@pytest.mark.django_db
def test_flags_list_runs_a_constant_number_of_queries(acme, owner, admin, api):
    for number in range(40):
        Flag.create_audited(
            by=owner,
            project=acme.project,
            key=f"flag-{number}",
            name="f",
            flag_type=FlagType.BOOLEAN,
        )
    client = api(admin)
    url = f"/v1/projects/{acme.project.pk}/flags"

    small = queries_for(client, f"{url}?limit=5", 5)
    large = queries_for(client, f"{url}?limit=40", 40)

    assert small == large == 4  # auth, project, count, rows


@pytest.mark.django_db
def test_get_one_approval_runs_two_queries(acme, developer, admin, api):
    request = propose_many(acme, developer, 1)[0]
    request.approve(by=admin)
    client = api(admin)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/v1/approvals/{request.pk}")

    assert response.status_code == 200
    assert response.json()["reviews"][0]["reviewer_id"] == str(admin.pk)
    # auth, row (with flag key, flag state and reviews)
    assert len(captured) == 2


@pytest.mark.django_db
def test_filtered_list_counts_its_rows_without_joins(acme, developer, admin, api):
    propose_many(acme, developer, 3)
    client = api(admin)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/v1/approvals?env_id={acme.production.pk}")

    assert response.json()["total"] == 3
    counts = [query["sql"] for query in captured if "COUNT(" in query["sql"]]
    assert len(counts) == 1
    assert "JOIN" not in counts[0]


def data_statements(captured) -> list[str]:
    """The statements that read or write rows (not transaction control such as SAVEPOINT)."""
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].split(None, 1)[0].upper()
        in ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")
    ]


@pytest.mark.django_db
def test_review_and_apply_runs_a_fixed_set_of_statements(acme, developer, admin, api):
    request = propose_many(acme, developer, 1)[0]
    client = api(admin)

    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            f"/v1/approvals/{request.pk}/review", {"action": "approve"}, format="json"
        )

    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    # auth; lock the request (with its flag and environment) and its flag state; lock the
    # audit chain and read its head (and the org's webhooks); the writes (insert the review,
    # the per-status totals, update the request and the flag state, queue the email, insert
    # both audit entries). The response is built from what was read and written: no read after.
    writes = 1 if connection.vendor == "postgresql" else 6  # one statement, or one each
    assert len(data_statements(captured)) == 3 + writes, "\n".join(data_statements(captured))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "writes_on_sqlite"),
    [
        # the review, the per-status totals, the request, the queued email, the audit entry
        ("review", {"action": "reject", "note": "not now"}, 5),
        # the per-status totals, the request, the audit entry
        ("cancel", {}, 3),
    ],
)
def test_reject_and_cancel_run_a_fixed_set_of_statements(
    acme, developer, admin, api, path, body, writes_on_sqlite
):
    """As review + apply: nothing of the request is read before its lock (the transition
    starts from ApprovalRequest.by_id, whose other fields are deferred), none after."""
    request = propose_many(acme, developer, 1)[0]
    client = api(developer if path == "cancel" else admin)

    with CaptureQueriesContext(connection) as captured:
        response = client.post(f"/v1/approvals/{request.pk}/{path}", body, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == ("cancelled" if path == "cancel" else "rejected")
    # auth; lock the request with its flag and environment; lock the audit chain; the writes
    writes = 1 if connection.vendor == "postgresql" else writes_on_sqlite
    assert len(data_statements(captured)) == 3 + writes, "\n".join(data_statements(captured))


@pytest.mark.django_db
def test_create_runs_a_fixed_set_of_statements(acme, developer, api):
    body = create_body(acme)
    client = api(developer)

    with CaptureQueriesContext(connection) as captured:
        response = client.post("/v1/approvals", body, format="json")

    assert response.status_code == 201
    # auth; the flag and the environment, each with its project; the flag state; lock the
    # audit chain and read its head (and the org's webhooks); the writes (insert the request,
    # the per-status totals, queue the email, insert the audit entry). No read after: the
    # response is built from what was read and written.
    writes = 1 if connection.vendor == "postgresql" else 4  # one statement, or one each
    assert len(data_statements(captured)) == 5 + writes, "\n".join(data_statements(captured))
