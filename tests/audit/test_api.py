"""GET /v1/audit: filters, org scoping, before/after state."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from tests.approvals.helpers import propose

pytestmark = pytest.mark.django_db


def test_viewer_reads_the_applied_change_with_before_and_after(api, acme, developer, admin, viewer):
    request = propose(acme, developer)
    request.approve(by=admin)
    response = api(viewer).get("/v1/audit?action=flag.approved_change_applied")
    assert response.status_code == 200
    [entry] = response.json()["data"]
    assert entry["actor_id"] == str(admin.pk)
    assert entry["before_state"]["enabled"] is False
    assert entry["after_state"]["enabled"] is True
    assert entry["metadata"]["approval_id"] == str(request.pk)
    assert entry["metadata"]["flag_key"] == "new-checkout"


def test_entries_written_during_an_api_call_carry_ip_user_agent_and_source(
    api, acme, developer, viewer
):
    from tests.approvals.helpers import create_body

    api(developer).post(
        "/v1/approvals", create_body(acme), format="json", HTTP_USER_AGENT="deploy-bot/1.0"
    )
    [entry] = api(viewer).get("/v1/audit?action=approval.created").json()["data"]
    assert entry["metadata"]["ip"] == "127.0.0.1"
    assert entry["metadata"]["user_agent"] == "deploy-bot/1.0"
    assert entry["metadata"]["source"] == "api"


def test_filters_by_resource_actor_and_time(api, acme, developer, admin, viewer):
    request = propose(acme, developer)
    request.reject(by=admin)
    client = api(viewer)
    by_resource = client.get(f"/v1/audit?resource_type=approval_request&resource_id={request.pk}")
    assert {entry["action"] for entry in by_resource.json()["data"]} == {
        "approval.created",
        "approval.rejected",
    }
    by_actor = client.get(f"/v1/audit?actor_id={admin.pk}").json()["data"]
    assert [entry["action"] for entry in by_actor] == ["approval.rejected"]
    later = (timezone.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert client.get(f"/v1/audit?since={later}").json()["total"] == 0
    assert (
        client.get(f"/v1/audit?until={later}").json()["total"]
        == AuditEntry.objects.filter(org=acme.org).count()
    )


@pytest.mark.parametrize("query", ["since=yesterday", "actor_id=42", "until=2026-13-01"])
def test_bad_filters_are_400(api, acme, viewer, query):
    response = api(viewer).get(f"/v1/audit?{query}")
    assert response.status_code == 400
    assert response.json()["fields"]


def test_other_orgs_entries_are_invisible(api, acme, other_org, outsider):
    ids = {entry["id"] for entry in api(outsider).get("/v1/audit?limit=100").json()["data"]}
    assert ids
    assert not AuditEntry.objects.filter(pk__in=ids, org=acme.org).exists()


def test_entries_are_newest_first(api, acme, viewer):
    data = api(viewer).get("/v1/audit").json()["data"]
    stamps = [entry["created_at"] for entry in data]
    assert stamps == sorted(stamps, reverse=True)
