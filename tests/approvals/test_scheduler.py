"""The scheduler step the worker runs: one due request per transaction, as the system."""

from datetime import timedelta

from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, Status
from approvals.scheduler import apply_next_due
from audit.models import ActorType, AuditEntry
from tests.approvals.helpers import (
    make_due,
    move_the_rollout,
    production_state,
    send_and_forget_queued_emails,
    send_queued_emails,
)


def scheduled_request(acme, developer, admin, **fields) -> ApprovalRequest:
    request = ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=developer,
        change_type=fields.pop("change_type", ChangeType.ENABLE_WITH_ROLLOUT),
        payload=fields.pop("payload", {"enabled": True, "percentage_rollout": 5000}),
        execution_date=timezone.now() + timedelta(hours=1),
        **fields,
    )
    request.approve(by=admin)
    assert request.status == Status.APPROVED
    return request


def test_due_request_is_applied_by_the_system(acme, developer, admin):
    request = scheduled_request(acme, developer, admin)
    make_due(request)

    assert apply_next_due() is not None

    request.refresh_from_db()
    assert request.status == Status.APPLIED
    assert request.applied_at is not None
    state = production_state(acme)
    assert (state.enabled, state.percentage_rollout) == (True, 5000)
    entry = AuditEntry.objects.get(action="flag.approved_change_applied")
    assert entry.actor is None
    assert entry.actor_type == ActorType.SYSTEM
    assert entry.metadata["approval_id"] == str(request.pk)
    assert entry.after_state["percentage_rollout"] == 5000


def test_request_not_yet_due_is_left_alone(acme, developer, admin):
    request = scheduled_request(acme, developer, admin)

    assert apply_next_due() is None

    request.refresh_from_db()
    assert request.status == Status.APPROVED
    assert production_state(acme).enabled is False


def test_due_requests_are_taken_oldest_execution_date_first(acme, developer, admin, owner):
    later = scheduled_request(
        acme, developer, admin, change_type=ChangeType.ENABLE, payload={"enabled": True}
    )
    earlier = scheduled_request(
        acme, developer, owner, change_type=ChangeType.UPDATE_STATE, payload={"rules": []}
    )
    ApprovalRequest.objects.filter(pk=later.pk).update(
        execution_date=timezone.now() - timedelta(minutes=1)
    )
    ApprovalRequest.objects.filter(pk=earlier.pk).update(
        execution_date=timezone.now() - timedelta(minutes=5)
    )

    assert apply_next_due().pk == earlier.pk
    assert apply_next_due().pk == later.pk
    assert apply_next_due() is None


def conflicted_when_due(acme, developer, admin, mailoutbox) -> ApprovalRequest:
    """A scheduled request approved by admin whose flag state moved before it came due, after
    the scheduled apply and its emails; `mailoutbox` holds only those emails."""
    request = scheduled_request(acme, developer, admin)
    make_due(request)
    move_the_rollout(acme, 2500)
    send_and_forget_queued_emails(mailoutbox)
    apply_next_due()
    send_queued_emails()
    return request


def test_scheduled_conflict_goes_back_to_pending_and_tells_the_requestor(
    acme, developer, admin, mailoutbox
):
    request = conflicted_when_due(acme, developer, admin, mailoutbox)

    request.refresh_from_db()
    assert request.status == Status.PENDING
    assert request.approvals_count == 0
    assert request.conflicts == [
        {"field": "percentage_rollout", "base": 0, "current": 2500, "requested": 5000}
    ]
    assert not request.reviews.filter(is_current=True).exists()
    assert production_state(acme).percentage_rollout == 2500
    entry = AuditEntry.objects.get(action="approval.schedule_conflicted")
    assert entry.actor_type == ActorType.SYSTEM
    assert not AuditEntry.objects.filter(action="flag.approved_change_applied").exists()
    (email,) = [email for email in mailoutbox if email.to == [developer.email]]
    assert "Not applied" in email.subject
    assert "percentage_rollout: was 0 when requested, is now 2500, you asked for 5000" in email.body
    assert f"/review/{request.pk}/" in email.body
    assert "percentage_rollout" in email.alternatives[0].content


def test_scheduled_conflict_asks_the_reviewers_to_review_again(
    acme, developer, admin, owner, mailoutbox
):
    """Their approvals were withdrawn: the org's reviewers hear that the request waits for them
    again, with the conflicts; the requestor, who hears of it as the requestor, is not among
    them."""
    request = conflicted_when_due(acme, developer, admin, mailoutbox)

    assert sorted(email.to for email in mailoutbox) == [
        sorted([admin.email, owner.email]),
        [developer.email],
    ]
    (email,) = [email for email in mailoutbox if email.to != [developer.email]]
    assert "Review again" in email.subject
    assert "new-checkout" in email.subject
    assert (
        "percentage_rollout: was 0 when requested, is now 2500, the request asks for 5000"
        in email.body
    )
    assert "Its approvals were withdrawn and it is pending again" in email.body
    assert f"/review/{request.pk}/" in email.body
    assert "percentage_rollout" in email.alternatives[0].content


def test_requestor_is_emailed_when_the_scheduled_change_applies(acme, developer, admin, mailoutbox):
    request = scheduled_request(acme, developer, admin)
    make_due(request)
    send_and_forget_queued_emails(mailoutbox)

    apply_next_due()
    send_queued_emails()

    assert [email.to for email in mailoutbox] == [[developer.email]]
    assert "Applied" in mailoutbox[0].subject
    assert "as scheduled" in mailoutbox[0].body


def test_cancelled_request_is_not_applied_when_due(acme, developer, admin):
    request = scheduled_request(acme, developer, admin)
    request.cancel(by=developer)
    make_due(request)

    assert apply_next_due() is None
    assert production_state(acme).enabled is False
