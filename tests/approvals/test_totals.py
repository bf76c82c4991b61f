"""The per-status totals behind list `total`s stay equal to a COUNT through every transition."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, Status, StatusTotal
from tests.approvals.helpers import propose_many


def assert_totals_match_rows(org) -> None:
    for status in Status.values:
        counted = ApprovalRequest.objects.filter(org=org, status=status).count()
        assert StatusTotal.objects.total(org.pk, status) == counted, status
    assert StatusTotal.objects.total(org.pk) == ApprovalRequest.objects.filter(org=org).count()


@pytest.mark.django_db
def test_totals_follow_creation_approval_rejection_and_cancellation(acme, developer, admin):
    requests = propose_many(acme, developer, 5)
    assert StatusTotal.objects.total(acme.org.pk, Status.PENDING) == 5

    requests[0].approve(by=admin)
    requests[1].reject(by=admin)
    requests[2].cancel(by=developer)

    assert StatusTotal.objects.total(acme.org.pk, Status.APPLIED) == 1
    assert StatusTotal.objects.total(acme.org.pk, Status.REJECTED) == 1
    assert StatusTotal.objects.total(acme.org.pk, Status.CANCELLED) == 1
    assert StatusTotal.objects.total(acme.org.pk, Status.PENDING) == 2
    assert_totals_match_rows(acme.org)


@pytest.mark.django_db
def test_totals_follow_scheduled_apply_and_schedule_conflict(acme, developer, admin, owner):
    later = timezone.now() + timedelta(hours=1)
    applied, conflicted = (
        ApprovalRequest.propose(
            flag=acme.flag,
            environment=environment,
            requestor=developer,
            change_type=ChangeType.ENABLE,
            execution_date=later,
        )
        for environment in (acme.production, acme.staging)
    )
    applied.approve(by=admin)
    conflicted.approve(by=admin)
    assert StatusTotal.objects.total(acme.org.pk, Status.APPROVED) == 2
    state = acme.flag.states.get(environment=acme.staging)
    state.change_directly(by=owner, changes={"enabled": True})

    assert applied.apply_when_due(now=later) is True
    assert conflicted.apply_when_due(now=later) is False

    assert StatusTotal.objects.total(acme.org.pk, Status.APPLIED) == 1
    assert StatusTotal.objects.total(acme.org.pk, Status.PENDING) == 1
    assert_totals_match_rows(acme.org)


@pytest.mark.django_db
def test_refused_transition_leaves_totals_unchanged(acme, developer, admin):
    request = propose_many(acme, developer, 1)[0]
    request.reject(by=admin)

    with pytest.raises(Exception, match="no longer pending"):
        request.approve(by=admin)

    assert_totals_match_rows(acme.org)


@pytest.mark.django_db
def test_deleting_a_flag_removes_its_requests_from_the_totals(acme, developer, admin, owner):
    requests = propose_many(acme, developer, 3)
    requests[0].approve(by=admin)

    acme.flag.delete_audited(by=owner)

    assert StatusTotal.objects.total(acme.org.pk) == 0
    assert_totals_match_rows(acme.org)


@pytest.mark.django_db
def test_deleting_a_project_removes_its_requests_from_the_totals(acme, developer, owner):
    propose_many(acme, developer, 2)

    acme.project.delete_audited(by=owner)

    assert_totals_match_rows(acme.org)
    assert StatusTotal.objects.total(acme.org.pk) == 0


@pytest.mark.django_db
def test_recount_rebuilds_totals_from_the_rows(acme, developer, admin):
    propose_many(acme, developer, 3)[0].approve(by=admin)
    StatusTotal.objects.filter(org=acme.org).update(count=999)

    StatusTotal.objects.recount(acme.org.pk)

    assert_totals_match_rows(acme.org)


@pytest.mark.django_db
def test_list_total_matches_the_rows_for_each_filter(acme, developer, admin, api):
    requests = propose_many(acme, developer, 4) + propose_many(acme, developer, 2, acme.staging)
    requests[0].approve(by=admin)
    client = api(admin)

    assert client.get("/v1/approvals").json()["total"] == 6
    assert client.get("/v1/approvals?status=pending").json()["total"] == 5
    assert client.get("/v1/approvals?status=applied").json()["total"] == 1
    assert client.get(f"/v1/approvals?env_id={acme.staging.pk}").json()["total"] == 2
    staging_pending = f"/v1/approvals?env_id={acme.staging.pk}&status=pending"
    assert client.get(staging_pending).json()["total"] == 2


@pytest.mark.django_db
def test_list_total_counts_only_the_callers_organization(
    acme, developer, admin, other_org, outsider, api
):
    propose_many(acme, developer, 3)
    propose_many(other_org, outsider, 2)

    assert api(admin).get("/v1/approvals").json()["total"] == 3
    assert api(outsider).get("/v1/approvals").json()["total"] == 2
