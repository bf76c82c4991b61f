"""A change's response is built from what the change read and wrote instead of read again
(`ApprovalRow.after_change`): in every case it must be what a read right after it shows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalRow, ChangeType
from approvals.scheduler import apply_next_due
from tests.approvals.helpers import (
    cancel,
    create_body,
    make_due,
    move_the_rollout,
    propose,
    require_two_approvals,
    review,
)


def answered_as_read(api, user, response, status_code=200) -> dict:
    """The change's response, checked against a read of the same request right after it."""
    assert response.status_code == status_code, response.json()
    body = response.json()
    read = api(user).get(f"/v1/approvals/{body['id']}")
    assert read.status_code == 200
    assert body == read.json()
    return body


def propose_rollout(acme, developer, **fields):
    return propose(
        acme,
        developer,
        change_type=ChangeType.ENABLE_WITH_ROLLOUT,
        payload={"enabled": True, "percentage_rollout": 5000},
        **fields,
    )


def test_create(api, acme, developer):
    response = api(developer).post("/v1/approvals", create_body(acme), format="json")
    body = answered_as_read(api, developer, response, status_code=201)
    assert (body["status"], body["reviews"], body["conflicts"]) == ("pending", [], [])


def test_approve_that_applies(api, acme, developer, admin):
    body = answered_as_read(
        api, admin, review(api, admin, propose(acme, developer), action="approve")
    )
    assert body["status"] == "applied"
    assert len(body["reviews"]) == 1


def test_first_of_two_approvals_then_the_second(api, acme, developer, admin, owner):
    require_two_approvals(acme)
    request = propose(acme, developer)
    first = answered_as_read(api, admin, review(api, admin, request, action="approve", note="ok"))
    assert (first["status"], len(first["reviews"])) == ("pending", 1)
    second = answered_as_read(api, owner, review(api, owner, request, action="approve"))
    assert (second["status"], len(second["reviews"])) == ("applied", 2)


def test_approve_ignoring_conflicts_while_more_approvals_are_needed(api, acme, developer, admin):
    require_two_approvals(acme)
    request = propose_rollout(acme, developer)
    move_the_rollout(acme, 2500)
    response = review(api, admin, request, action="approve", ignore_conflicts=True)
    body = answered_as_read(api, admin, response)
    assert body["status"] == "pending"
    assert [conflict["field"] for conflict in body["conflicts"]] == ["percentage_rollout"]


def test_scheduled_approve_keeps_showing_its_conflicts(api, acme, developer, admin):
    request = propose_rollout(acme, developer, execution_date=timezone.now() + timedelta(hours=1))
    move_the_rollout(acme, 2500)
    response = review(api, admin, request, action="approve", ignore_conflicts=True)
    body = answered_as_read(api, admin, response)
    assert body["status"] == "approved"
    assert [conflict["field"] for conflict in body["conflicts"]] == ["percentage_rollout"]


def test_reject_after_an_approval(api, acme, developer, admin, owner):
    require_two_approvals(acme)
    request = propose(acme, developer)
    review(api, admin, request, action="approve")
    body = answered_as_read(api, owner, review(api, owner, request, action="reject", note="no"))
    assert (body["status"], len(body["reviews"])) == ("rejected", 2)


def test_cancel_after_an_approval(api, acme, developer, admin):
    require_two_approvals(acme)
    request = propose(acme, developer)
    review(api, admin, request, action="approve")
    body = answered_as_read(api, developer, cancel(api, developer, request))
    assert (body["status"], len(body["reviews"])) == ("cancelled", 1)


def reopened_by_a_scheduled_conflict(api, acme, developer, admin):
    """A scheduled request whose apply found a conflict: pending again, with a withdrawn
    review it no longer counts."""
    request = propose_rollout(acme, developer, execution_date=timezone.now() + timedelta(hours=1))
    review(api, admin, request, action="approve")
    make_due(request)
    move_the_rollout(acme, 2500)
    apply_next_due()
    reopened = api(admin).get(f"/v1/approvals/{request.pk}").json()
    assert (reopened["status"], reopened["approvals_count"]) == ("pending", 0)
    assert [item["is_current"] for item in reopened["reviews"]] == [False]
    return request


def test_approve_a_request_reopened_by_a_scheduled_conflict(api, acme, developer, admin, owner):
    request = reopened_by_a_scheduled_conflict(api, acme, developer, admin)
    response = review(api, owner, request, action="approve", ignore_conflicts=True)
    body = answered_as_read(api, owner, response)
    assert body["status"] == "applied"
    assert [item["is_current"] for item in body["reviews"]] == [False, True]


def test_cancel_a_request_reopened_by_a_scheduled_conflict(api, acme, developer, admin):
    request = reopened_by_a_scheduled_conflict(api, acme, developer, admin)
    body = answered_as_read(api, developer, cancel(api, developer, request))
    assert body["status"] == "cancelled"
    assert [item["is_current"] for item in body["reviews"]] == [False]


def test_a_request_not_just_changed_through_the_api_has_no_row_to_answer_with(acme, developer):
    """A request read from the database, or applied by the scheduler, does not carry its
    reviews: building its row from memory is refused rather than answered wrong."""
    request = propose(acme, developer)
    with pytest.raises(ValueError, match="just created, reviewed or cancelled"):
        ApprovalRow.after_change(ApprovalRequest.objects.get(pk=request.pk))
