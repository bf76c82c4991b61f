"""The transition methods themselves: every interface (API, review page, admin) calls these."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ALLOWED_TRANSITIONS, ApprovalRequest, ChangeType, Review, Status
from audit.models import AuditEntry
from flagship.errors import InvalidInput, NotFound, NotPermitted, StateConflict
from tests.approvals.helpers import make_due, production_state, propose, require_two_approvals


class TestPropose:
    def test_records_base_state_and_version_of_touched_fields(self, acme, developer):
        request = propose(
            acme,
            developer,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 2500},
        )
        assert request.status == Status.PENDING
        assert request.payload == {"enabled": True, "percentage_rollout": 2500}
        assert request.base_state == {"enabled": False, "percentage_rollout": 0}
        assert request.base_version == production_state(acme).version

    def test_required_approvals_come_from_the_environment_at_creation(self, acme, developer):
        require_two_approvals(acme)
        request = propose(acme, developer)
        acme.production.min_approvals = 3
        acme.production.save()
        request.refresh_from_db()
        assert request.required_approvals == 2

    def test_writes_approval_created_audit_entry(self, acme, developer):
        request = propose(acme, developer)
        entry = AuditEntry.objects.get(action="approval.created", resource_id=str(request.pk))
        assert entry.actor == developer
        assert entry.metadata["approval_id"] == str(request.pk)
        assert entry.after_state["payload"] == {"enabled": True}

    def test_viewer_cannot_propose(self, acme, viewer):
        with pytest.raises(NotPermitted):
            propose(acme, viewer)
        assert not ApprovalRequest.objects.exists()

    @pytest.mark.parametrize(
        ("change_type", "payload"),
        [
            ("disable", {"enabled": True}),
            ("enable", {"enabled": False}),
            ("enable_with_rollout", {"enabled": True}),
            ("update_state", None),
            ("update_state", {}),
            ("enable", {"percentage_rollout": 10001}),
            ("enable", {"colour": "red"}),
            ("update_state", {"default_value": "yes"}),
            ("update_state", {"variants": [{"key": "a", "value": True, "weight": 10}]}),
        ],
    )
    def test_refuses_payload_that_disagrees_or_is_invalid(
        self, acme, developer, change_type, payload
    ):
        with pytest.raises(InvalidInput):
            propose(acme, developer, change_type=change_type, payload=payload)
        assert not ApprovalRequest.objects.exists()
        assert not AuditEntry.objects.filter(action="approval.created").exists()

    def test_refuses_execution_date_in_the_past(self, acme, developer):
        with pytest.raises(InvalidInput):
            propose(acme, developer, execution_date=timezone.now() - timedelta(minutes=1))


class TestApprove:
    def test_single_required_approval_applies_payload_with_merge(self, acme, developer, admin):
        state = production_state(acme)
        state.rules = [
            {
                "id": "beta",
                "priority": 0,
                "description": "",
                "conditions": [{"attribute": "plan", "operator": "in", "values": ["beta"]}],
                "percentage": 10000,
                "value": True,
                "match_type": "all",
            }
        ]
        state.save()
        request = propose(
            acme,
            developer,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 5000},
        )
        request.approve(by=admin, note="ship it")

        assert request.status == Status.APPLIED
        assert request.applied_at is not None
        assert request.reviewer == admin
        assert request.review_note == "ship it"
        state.refresh_from_db()
        assert state.enabled is True
        assert state.percentage_rollout == 5000
        assert state.rules[0]["id"] == "beta"  # untouched fields are kept
        assert state.version == 2

    def test_applied_entry_has_before_after_and_approval_id(self, acme, developer, admin):
        request = propose(acme, developer)
        request.approve(by=admin)
        entry = AuditEntry.objects.get(action="flag.approved_change_applied")
        assert entry.actor == admin
        assert entry.actor_type == "user"
        assert entry.before_state["enabled"] is False
        assert entry.after_state["enabled"] is True
        assert entry.after_state["version"] == entry.before_state["version"] + 1
        assert entry.metadata["approval_id"] == str(request.pk)
        assert entry.resource_type == "flag_state"

    def test_with_two_required_the_first_approval_keeps_it_pending(
        self, acme, developer, admin, second_admin
    ):
        require_two_approvals(acme)
        request = propose(acme, developer)

        request.approve(by=admin)
        assert request.status == Status.PENDING
        assert request.approvals_count == 1
        assert production_state(acme).enabled is False
        assert AuditEntry.objects.filter(action="approval.approved").count() == 1

        request.approve(by=second_admin)
        assert request.status == Status.APPLIED
        assert request.reviewer == second_admin
        assert production_state(acme).enabled is True

    def test_same_reviewer_twice_is_a_conflict(self, acme, developer, admin):
        require_two_approvals(acme)
        request = propose(acme, developer)
        request.approve(by=admin)
        with pytest.raises(StateConflict, match="already reviewed"):
            request.approve(by=admin)
        assert Review.objects.filter(approval_request=request).count() == 1

    def test_own_request_cannot_be_approved(self, acme, admin):
        request = propose(acme, admin)
        with pytest.raises(NotPermitted, match="cannot review your own request"):
            request.approve(by=admin)
        assert request.status == Status.PENDING

    def test_developer_and_viewer_cannot_approve(self, acme, owner, developer, viewer):
        request = propose(acme, owner)
        for person in (developer, viewer):
            with pytest.raises(NotPermitted):
                request.approve(by=person)
        assert request.reviews.count() == 0

    @pytest.mark.parametrize("closing", ["reject", "cancel", "approve"])
    def test_approving_a_closed_request_is_a_conflict(self, acme, developer, admin, owner, closing):
        request = propose(acme, developer)
        getattr(request, closing)(by=owner)
        with pytest.raises(StateConflict, match="no longer pending"):
            request.approve(by=admin)

    def test_future_execution_date_stops_at_approved(self, acme, developer, admin):
        request = propose(acme, developer, execution_date=timezone.now() + timedelta(hours=1))
        request.approve(by=admin)
        assert request.status == Status.APPROVED
        assert request.applied_at is None
        assert production_state(acme).enabled is False

    def test_conflict_is_refused_unless_ignored(self, acme, developer, admin, owner):
        acme.production.requires_approval = False
        acme.production.save()
        request = propose(
            acme,
            developer,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 5000},
        )
        production_state(acme).change_directly(by=owner, changes={"percentage_rollout": 2500})

        with pytest.raises(StateConflict) as raised:
            request.approve(by=admin)
        assert raised.value.extra["conflicts"] == [
            {"field": "percentage_rollout", "base": 0, "current": 2500, "requested": 5000}
        ]
        assert request.reviews.count() == 0

        request.approve(by=admin, ignore_conflicts=True)
        assert request.status == Status.APPLIED
        assert production_state(acme).percentage_rollout == 5000


class TestRejectAndCancel:
    def test_reject_is_terminal_and_audited(self, acme, developer, admin):
        request = propose(acme, developer)
        request.reject(by=admin, note="not now")
        assert request.status == Status.REJECTED
        assert request.reviewer == admin
        assert request.review_note == "not now"
        assert AuditEntry.objects.filter(action="approval.rejected", actor=admin).exists()
        with pytest.raises(StateConflict):
            request.reject(by=admin)

    def test_developer_cancels_own_request_only(self, acme, developer, admin):
        others = propose(acme, admin)
        with pytest.raises(NotPermitted):
            others.cancel(by=developer)
        own = propose(acme, developer)
        own.cancel(by=developer)
        assert own.status == Status.CANCELLED
        assert AuditEntry.objects.filter(action="approval.cancelled", actor=developer).exists()

    def test_admin_cancels_a_scheduled_request(self, acme, developer, admin, owner):
        request = propose(acme, developer, execution_date=timezone.now() + timedelta(hours=1))
        request.approve(by=admin)
        request.cancel(by=owner)
        assert request.status == Status.CANCELLED

    def test_cancel_of_applied_request_is_a_conflict(self, acme, developer, admin):
        request = propose(acme, developer)
        request.approve(by=admin)
        with pytest.raises(StateConflict):
            request.cancel(by=admin)

    def test_viewer_cannot_cancel(self, acme, developer, viewer):
        request = propose(acme, developer)
        with pytest.raises(NotPermitted):
            request.cancel(by=viewer)


class TestScheduledApply:
    def make_due(self, acme, developer, admin, **fields):
        request = propose(
            acme, developer, execution_date=timezone.now() + timedelta(hours=1), **fields
        )
        request.approve(by=admin)
        make_due(request)
        return request

    def test_due_request_is_applied_by_the_system(self, acme, developer, admin):
        request = self.make_due(acme, developer, admin)
        assert request.apply_when_due() is True
        request.refresh_from_db()
        assert request.status == Status.APPLIED
        entry = AuditEntry.objects.get(action="flag.approved_change_applied")
        assert entry.actor is None
        assert entry.actor_type == "system"
        assert production_state(acme).enabled is True

    def test_conflicting_due_request_goes_back_to_pending(self, acme, developer, admin, owner):
        request = self.make_due(
            acme,
            developer,
            admin,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 5000},
        )
        acme.production.requires_approval = False
        acme.production.save()
        production_state(acme).change_directly(by=owner, changes={"percentage_rollout": 100})

        assert request.apply_when_due() is False
        request.refresh_from_db()
        assert request.status == Status.PENDING
        assert request.approvals_count == 0
        assert request.conflicts[0]["field"] == "percentage_rollout"
        assert production_state(acme).percentage_rollout == 100
        assert AuditEntry.objects.filter(action="approval.schedule_conflicted").exists()
        # The earlier approver may decide again, now with the conflict in view.
        request.approve(by=admin, ignore_conflicts=True)
        assert request.status == Status.APPLIED

    def test_not_yet_due_request_is_left_alone(self, acme, developer, admin):
        request = propose(acme, developer, execution_date=timezone.now() + timedelta(hours=1))
        request.approve(by=admin)
        assert request.apply_when_due() is False
        assert request.status == Status.APPROVED


def test_terminal_statuses_have_no_moves():
    for status in (Status.APPLIED, Status.REJECTED, Status.CANCELLED):
        assert status not in ALLOWED_TRANSITIONS


class TestOrganizationBoundary:
    def test_reviewer_of_another_org_finds_nothing(self, acme, developer, outsider):
        request = propose(acme, developer)
        for transition in (request.approve, request.reject, request.cancel):
            with pytest.raises(NotFound):
                transition(by=outsider)
        request.refresh_from_db()
        assert request.status == Status.PENDING
        assert not request.reviews.exists()

    def test_cannot_propose_on_another_orgs_flag(self, acme, other_org, developer):
        with pytest.raises(NotFound):
            propose(other_org, developer)


def test_a_request_deleted_since_it_was_read_is_not_found(acme, developer, admin):
    request = propose(acme, developer)
    ApprovalRequest.objects.filter(pk=request.pk).delete()
    for transition in (request.approve, request.reject, request.cancel):
        with pytest.raises(NotFound, match="approval request not found"):
            transition(by=admin)


def test_approving_recreates_a_flag_state_that_went_missing(acme, developer, admin):
    request = propose(acme, developer)
    production_state(acme).delete()
    request.approve(by=admin)
    assert request.status == Status.APPLIED
    assert production_state(acme).enabled is True


def test_proposing_recreates_a_flag_state_that_went_missing(acme, developer):
    production_state(acme).delete()
    request = propose(acme, developer)
    assert request.base_state == {"enabled": False}
    assert production_state(acme).version == request.base_version == 1
