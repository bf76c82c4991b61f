"""Two reviewers acting on one request at the same instant, in real threads on PostgreSQL: the
row lock makes one of them win and the other see 409, and the change is applied at most once."""

import threading

import pytest
from django.db import connection

from approvals.models import ApprovalRequest, ChangeType, Status
from audit.models import AuditEntry
from conftest import bearer_client
from flags.models import FlagState

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def at_once(*calls) -> list:
    """Runs each call in its own thread, released together by a barrier; returns the results
    (responses) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # surfaced to the test through the results
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def review_call(user, approval, action):
    client = bearer_client(user)
    url = f"/v1/approvals/{approval.pk}/review"
    return lambda: client.post(url, {"action": action}, format="json")


def cancel_call(user, approval):
    client = bearer_client(user)
    return lambda: client.post(f"/v1/approvals/{approval.pk}/cancel", {}, format="json")


def applied_entries(approval) -> int:
    return AuditEntry.objects.filter(
        action="flag.approved_change_applied", metadata__approval_id=str(approval.pk)
    ).count()


@pytest.fixture
def pending(acme, developer):
    return ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=developer,
        change_type=ChangeType.ENABLE_WITH_ROLLOUT,
        payload={"percentage_rollout": 5000},
    )


def production_version(acme) -> int:
    return FlagState.objects.get(flag=acme.flag, environment=acme.production).version


def test_two_reviewers_approving_at_once_apply_the_change_exactly_once(
    acme, pending, admin, second_admin
):
    version_before = production_version(acme)

    responses = at_once(
        review_call(admin, pending, "approve"), review_call(second_admin, pending, "approve")
    )

    assert sorted(response.status_code for response in responses) == [200, 409]
    loser = next(response for response in responses if response.status_code == 409)
    assert loser.json() == {"error": "approval request is no longer pending"}
    pending.refresh_from_db()
    assert pending.status == Status.APPLIED
    assert pending.reviews.count() == 1
    assert applied_entries(pending) == 1
    assert production_version(acme) == version_before + 1


def test_approve_racing_reject_ends_in_exactly_one_decision(acme, pending, admin, second_admin):
    version_before = production_version(acme)

    approve, reject = at_once(
        review_call(admin, pending, "approve"), review_call(second_admin, pending, "reject")
    )

    assert sorted([approve.status_code, reject.status_code]) == [200, 409]
    pending.refresh_from_db()
    if approve.status_code == 200:
        assert pending.status == Status.APPLIED
        assert applied_entries(pending) == 1
        assert production_version(acme) == version_before + 1
    else:
        assert pending.status == Status.REJECTED
        assert applied_entries(pending) == 0
        assert production_version(acme) == version_before
    assert pending.reviews.count() == 1


def test_approve_racing_cancel_ends_in_exactly_one_decision(acme, pending, admin, developer):
    version_before = production_version(acme)

    approve, cancel = at_once(
        review_call(admin, pending, "approve"), cancel_call(developer, pending)
    )

    assert sorted([approve.status_code, cancel.status_code]) == [200, 409]
    pending.refresh_from_db()
    expected = Status.APPLIED if approve.status_code == 200 else Status.CANCELLED
    assert pending.status == expected
    assert applied_entries(pending) == (1 if expected == Status.APPLIED else 0)
    assert production_version(acme) == version_before + (1 if expected == Status.APPLIED else 0)
