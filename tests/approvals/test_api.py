"""SPEC §4 through HTTP: status codes, error shapes, check order, envelopes, org isolation."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, Status
from audit.models import AuditEntry
from flags.models import Flag, FlagState
from tests.approvals.helpers import (
    cancel,
    create_body,
    move_the_rollout,
    propose,
    require_two_approvals,
    review,
)

pytestmark = pytest.mark.django_db


class TestCreate:
    def test_developer_creates_request_and_gets_the_approval_object(self, api, acme, developer):
        response = api(developer).post("/v1/approvals", create_body(acme), format="json")

        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "pending"
        assert body["flag_key"] == "new-checkout"
        assert body["requestor_id"] == str(developer.pk)
        assert body["org_id"] == str(acme.org.pk)
        assert body["project_id"] == str(acme.project.pk)
        assert body["payload"] == {"enabled": True, "percentage_rollout": 5000}
        assert body["base_state"] == {"enabled": False, "percentage_rollout": 0}
        assert body["required_approvals"] == 1
        assert body["approvals_count"] == 0
        assert body["reviews"] == []
        assert body["conflicts"] == []
        assert body["created_at"].endswith("Z")
        assert AuditEntry.objects.filter(action="approval.created", resource_id=body["id"]).exists()

    def test_enable_without_payload_means_enabled_true(self, api, acme, developer):
        body = create_body(acme, change_type="enable")
        del body["payload"]
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 201
        assert response.json()["payload"] == {"enabled": True}

    def test_viewer_gets_403(self, api, acme, viewer):
        response = api(viewer).post("/v1/approvals", create_body(acme), format="json")
        assert response.status_code == 403
        assert "error" in response.json()
        assert not ApprovalRequest.objects.exists()

    def test_without_token_401(self, api, acme):
        response = api().post("/v1/approvals", create_body(acme), format="json")
        assert response.status_code == 401
        assert response.json()["error"]

    def test_flag_of_another_org_is_404(self, api, acme, other_org, developer):
        body = create_body(acme, flag_id=str(other_org.flag.pk))
        assert api(developer).post("/v1/approvals", body, format="json").status_code == 404

    def test_another_orgs_flag_is_as_unknown_as_a_missing_one(
        self, api, acme, other_org, developer
    ):
        # With an unknown environment, the answer must not tell that the flag exists elsewhere.
        for flag_id in (other_org.flag.pk, uuid.uuid4()):
            body = create_body(acme, flag_id=str(flag_id), env_id=str(uuid.uuid4()))
            response = api(developer).post("/v1/approvals", body, format="json")
            assert response.status_code == 404
            assert response.json()["error"] == "flag not found"

    def test_environment_of_another_org_is_404(self, api, acme, other_org, developer):
        body = create_body(acme, env_id=str(other_org.production.pk))
        assert api(developer).post("/v1/approvals", body, format="json").status_code == 404

    def test_flag_and_environment_of_different_projects_is_400(self, api, acme, owner, developer):
        from flags.models import Project

        other_project = Project.create_audited(by=owner, org_id=acme.org.pk, name="mobile")
        other_flag = Flag.create_audited(by=owner, project=other_project, key="x", name="X")
        body = create_body(acme, flag_id=str(other_flag.pk))
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400
        assert "env_id" in response.json()["fields"]

    def test_unknown_change_type_lists_the_allowed_values(self, api, acme, developer):
        body = create_body(acme, change_type="toggle")
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400
        message = response.json()["fields"]["change_type"][0]
        for allowed in ChangeType.values:
            assert allowed in message

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"percentage_rollout": 10001}, "payload.percentage_rollout"),
            ({"percentage_rollout": "50%"}, "payload.percentage_rollout"),
            ({"enabled": True, "shiny": 1}, "payload.shiny"),
            ({"default_value": "on"}, "payload.default_value"),
            (
                {"variants": [{"key": "a", "value": True, "weight": 4000}]},
                "payload.variants",
            ),
            (
                {"rules": [{"conditions": [{"attribute": "x", "operator": "~", "values": ["1"]}]}]},
                "payload.rules.0.conditions.0.operator",
            ),
        ],
    )
    def test_invalid_payload_is_400_naming_the_field(self, api, acme, developer, payload, field):
        body = create_body(acme, change_type="update_state", payload=payload)
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]
        assert not ApprovalRequest.objects.exists()

    def test_disable_with_enabled_true_is_400(self, api, acme, developer):
        body = create_body(acme, change_type="disable", payload={"enabled": True})
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400

    def test_payload_required_for_update_state(self, api, acme, developer):
        body = create_body(acme, change_type="update_state")
        del body["payload"]
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400
        assert "payload" in response.json()["fields"]

    def test_unknown_body_field_is_400_naming_it(self, api, acme, developer):
        body = create_body(acme, priority="high")
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400
        assert "priority" in response.json()["fields"]

    def test_missing_required_fields_are_named(self, api, acme, developer):
        response = api(developer).post("/v1/approvals", {}, format="json")
        assert response.status_code == 400
        assert set(response.json()["fields"]) >= {"flag_id", "env_id", "change_type"}

    def test_non_json_body_is_400_and_wrong_content_type_415(self, api, acme, developer):
        client = api(developer)
        broken = client.post("/v1/approvals", "{not json", content_type="application/json")
        assert broken.status_code == 400
        assert broken.json()["error"]
        form = client.post("/v1/approvals", "a=b", content_type="application/x-www-form-urlencoded")
        assert form.status_code == 415
        assert form.json()["error"]

    def test_past_execution_date_is_400(self, api, acme, developer):
        past = (timezone.now() - timedelta(hours=1)).isoformat()
        body = create_body(acme, execution_date=past)
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400
        assert "execution_date" in response.json()["fields"]

    @pytest.mark.parametrize("bad", ["not-a-uuid", 42, None])
    def test_malformed_ids_are_400(self, api, acme, developer, bad):
        body = create_body(acme, flag_id=bad)
        response = api(developer).post("/v1/approvals", body, format="json")
        assert response.status_code == 400


class TestListAndGet:
    def test_list_envelope_newest_first(self, api, acme, developer, viewer):
        first = propose(acme, developer)
        second = propose(acme, developer, environment=acme.staging)
        body = api(viewer).get("/v1/approvals").json()
        assert body["total"] == 2
        assert body["limit"] == 50
        assert body["offset"] == 0
        assert body["has_more"] is False
        assert [item["id"] for item in body["data"]] == [str(second.pk), str(first.pk)]

    def test_filters(self, api, acme, developer, admin, viewer):
        pending = propose(acme, developer)
        applied = propose(acme, developer, environment=acme.staging)
        applied.approve(by=admin)
        by_admin = propose(acme, admin, environment=acme.development)
        client = api(viewer)

        def ids(query):
            response = client.get(f"/v1/approvals?{query}")
            assert response.status_code == 200, response.json()
            return {item["id"] for item in response.json()["data"]}

        assert ids("status=pending") == {str(pending.pk), str(by_admin.pk)}
        assert ids("status=applied") == {str(applied.pk)}
        assert ids(f"env_id={acme.staging.pk}") == {str(applied.pk)}
        assert ids(f"requestor_id={admin.pk}") == {str(by_admin.pk)}
        assert ids(f"flag_id={acme.flag.pk}") == {
            str(pending.pk),
            str(applied.pk),
            str(by_admin.pk),
        }
        assert len(ids(f"project_id={acme.project.pk}")) == 3

    def test_unknown_status_is_400_listing_the_statuses(self, api, acme, viewer):
        response = api(viewer).get("/v1/approvals?status=done")
        assert response.status_code == 400
        message = response.json()["fields"]["status"][0]
        for status in Status.values:
            assert status in message

    @pytest.mark.parametrize(
        "query",
        [
            "limit=abc",
            "limit=-1",
            "offset=x",
            "limit=0",
            "offset=-5",
            "offset=99999999999999999999",
            "limit=1.5",
        ],
    )
    def test_bad_limit_or_offset_is_400(self, api, acme, viewer, query):
        response = api(viewer).get(f"/v1/approvals?{query}")
        assert response.status_code == 400
        assert response.json()["error"]

    def test_limit_is_capped_at_100_and_pages_report_has_more(self, api, acme, developer, viewer):
        for _ in range(3):
            propose(acme, developer)
        body = api(viewer).get("/v1/approvals?limit=1000").json()
        assert body["limit"] == 100
        page = api(viewer).get("/v1/approvals?limit=2&offset=0").json()
        assert page["has_more"] is True
        assert len(page["data"]) == 2
        last = api(viewer).get("/v1/approvals?limit=2&offset=2").json()
        assert last["has_more"] is False
        assert len(last["data"]) == 1

    def test_other_orgs_requests_are_invisible(self, api, acme, developer, outsider):
        request = propose(acme, developer)
        assert api(outsider).get("/v1/approvals").json()["total"] == 0
        assert api(outsider).get(f"/v1/approvals/{request.pk}").status_code == 404

    def test_get_one_and_bad_ids(self, api, acme, developer, viewer):
        request = propose(acme, developer)
        assert api(viewer).get(f"/v1/approvals/{request.pk}").json()["id"] == str(request.pk)
        assert api(viewer).get(f"/v1/approvals/{uuid.uuid4()}").status_code == 404
        assert api(viewer).get("/v1/approvals/not-a-uuid").status_code == 404

    def test_per_flag_environment_list(self, api, acme, developer, viewer):
        in_production = propose(acme, developer)
        propose(acme, developer, environment=acme.staging)
        url = (
            f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}"
            f"/environments/{acme.production.pk}/approvals"
        )
        body = api(viewer).get(url).json()
        assert [item["id"] for item in body["data"]] == [str(in_production.pk)]
        assert body["total"] == 1

    def test_per_flag_list_of_another_org_is_404(self, api, acme, outsider):
        url = (
            f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}"
            f"/environments/{acme.production.pk}/approvals"
        )
        assert api(outsider).get(url).status_code == 404

    def test_open_request_shows_conflicts(self, api, acme, developer, owner, viewer):
        acme.staging.requires_approval = True
        acme.staging.save()
        request = propose(
            acme,
            developer,
            environment=acme.staging,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 5000},
        )
        FlagState.objects.filter(flag=acme.flag, environment=acme.staging).update(
            percentage_rollout=2500
        )
        body = api(viewer).get(f"/v1/approvals/{request.pk}").json()
        assert body["conflicts"] == [
            {"field": "percentage_rollout", "base": 0, "current": 2500, "requested": 5000}
        ]


class TestReview:
    def test_admin_approves_and_the_change_is_applied(self, api, acme, developer, admin):
        request = propose(
            acme,
            developer,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 5000},
        )
        response = review(api, admin, request, action="approve", note="Looks good")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "applied"
        assert body["reviewer_id"] == str(admin.pk)
        assert body["review_note"] == "Looks good"
        assert body["reviewed_at"].endswith("Z")
        assert body["applied_at"].endswith("Z")
        assert body["approvals_count"] == 1
        assert body["reviews"][0]["action"] == "approve"
        state_url = (
            f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}"
            f"/environments/{acme.production.pk}"
        )
        state = api(developer).get(state_url).json()
        assert state["enabled"] is True
        assert state["percentage_rollout"] == 5000

    def test_reject(self, api, acme, developer, admin):
        request = propose(acme, developer)
        response = review(api, admin, request, action="reject", note="no")
        assert response.status_code == 200
        assert response.json()["status"] == "rejected"

    def test_check_order_role_before_404(self, api, acme, developer):
        response = api(developer).post(f"/v1/approvals/{uuid.uuid4()}/review", {}, format="json")
        assert response.status_code == 403

    def test_check_order_404_before_body(self, api, acme, admin):
        response = api(admin).post(f"/v1/approvals/{uuid.uuid4()}/review", {}, format="json")
        assert response.status_code == 404

    @pytest.mark.parametrize(
        ("body", "content_type", "status_for_a_known_id"),
        [("not json", "application/json", 400), ("action=approve", "text/plain", 415)],
    )
    @pytest.mark.parametrize("action", ["review", "cancel"])
    def test_check_order_404_before_an_unreadable_body(
        self, api, acme, developer, admin, body, content_type, status_for_a_known_id, action
    ):
        client = api(admin)
        unknown = client.generic(
            "POST", f"/v1/approvals/{uuid.uuid4()}/{action}", body, content_type=content_type
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "approval request not found"

        request = propose(acme, developer)
        known = client.generic(
            "POST", f"/v1/approvals/{request.pk}/{action}", body, content_type=content_type
        )
        assert known.status_code == status_for_a_known_id
        request.refresh_from_db()
        assert request.status == "pending"

    @pytest.mark.parametrize("approval_id", [uuid.uuid4(), "not-a-uuid", "1%00"])
    @pytest.mark.parametrize("action", ["review", "cancel"])
    def test_valid_body_for_an_unknown_id_is_404(self, api, acme, admin, approval_id, action):
        body = {"action": "approve"} if action == "review" else {}
        url = f"/v1/approvals/{approval_id}/{action}"
        response = api(admin).post(url, body, format="json")
        assert response.status_code == 404
        assert response.json()["error"] == "approval request not found"

    def test_check_order_body_before_state(self, api, acme, developer, admin, owner):
        request = propose(acme, developer)
        request.cancel(by=owner)
        response = review(api, admin, request, action="maybe")
        assert response.status_code == 400
        assert "action" in response.json()["fields"]

    def test_check_order_state_before_own_request(self, api, acme, admin, owner):
        request = propose(acme, admin)
        request.cancel(by=owner)
        response = review(api, admin, request, action="approve")
        assert response.status_code == 409
        assert response.json()["error"] == "approval request is no longer pending"

    def test_own_request_is_403(self, api, acme, admin):
        request = propose(acme, admin)
        response = review(api, admin, request, action="approve")
        assert response.status_code == 403
        assert response.json()["error"] == "cannot review your own request"

    def test_already_approved_by_you_is_409(self, api, acme, developer, admin):
        require_two_approvals(acme)
        request = propose(acme, developer)
        assert review(api, admin, request, action="approve").status_code == 200
        response = review(api, admin, request, action="approve")
        assert response.status_code == 409
        assert "already reviewed" in response.json()["error"]

    def test_min_approvals_two(self, api, acme, developer, admin, owner):
        require_two_approvals(acme)
        request = propose(acme, developer)
        first = review(api, admin, request, action="approve").json()
        assert first["status"] == "pending"
        assert first["approvals_count"] == 1
        assert first["required_approvals"] == 2
        second = review(api, owner, request, action="approve").json()
        assert second["status"] == "applied"
        assert second["reviewer_id"] == str(owner.pk)
        assert len(second["reviews"]) == 2

    def test_conflict_is_409_with_conflicts_then_ignore_conflicts_applies(
        self, api, acme, developer, admin
    ):
        request = propose(
            acme,
            developer,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 5000},
        )
        move_the_rollout(acme, 2500)
        response = review(api, admin, request, action="approve")
        assert response.status_code == 409
        assert response.json()["conflicts"][0]["field"] == "percentage_rollout"
        forced = review(api, admin, request, action="approve", ignore_conflicts=True)
        assert forced.status_code == 200
        assert forced.json()["status"] == "applied"

    def test_review_of_another_orgs_request_is_404(self, api, acme, developer, outsider):
        request = propose(acme, developer)
        assert review(api, outsider, request, action="approve").status_code == 404
        request.refresh_from_db()
        assert request.status == Status.PENDING

    def test_scheduled_request_stops_at_approved(self, api, acme, developer, admin):
        future = (timezone.now() + timedelta(hours=2)).isoformat()
        created = api(developer).post(
            "/v1/approvals", create_body(acme, execution_date=future), format="json"
        )
        assert created.status_code == 201
        request = ApprovalRequest.objects.get(pk=created.json()["id"])
        body = review(api, admin, request, action="approve").json()
        assert body["status"] == "approved"
        assert body["applied_at"] is None
        assert body["execution_date"].endswith("Z")


class TestCancel:
    def test_requestor_cancels(self, api, acme, developer):
        request = propose(acme, developer)
        response = cancel(api, developer, request)
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert AuditEntry.objects.filter(action="approval.cancelled").exists()

    def test_cancel_without_body(self, api, acme, developer):
        request = propose(acme, developer)
        response = api(developer).post(f"/v1/approvals/{request.pk}/cancel")
        assert response.status_code == 200

    def test_developer_cannot_cancel_someone_elses(self, api, acme, admin, developer):
        request = propose(acme, admin)
        response = cancel(api, developer, request)
        assert response.status_code == 403

    def test_admin_cancels_anyones(self, api, acme, developer, admin):
        request = propose(acme, developer)
        response = cancel(api, admin, request)
        assert response.status_code == 200

    def test_viewer_cannot_cancel(self, api, acme, developer, viewer):
        request = propose(acme, developer)
        response = cancel(api, viewer, request)
        assert response.status_code == 403

    def test_cancel_of_terminal_request_is_409(self, api, acme, developer, admin):
        request = propose(acme, developer)
        request.reject(by=admin)
        response = cancel(api, admin, request)
        assert response.status_code == 409
