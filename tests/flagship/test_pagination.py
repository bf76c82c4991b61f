"""Keyset cursors on newest-first lists: stable order, no duplicates or gaps, clean errors."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest
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
