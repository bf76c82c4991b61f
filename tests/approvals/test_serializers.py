"""The hand-written approval representation says exactly what DRF's declared fields say."""

from datetime import timedelta

import pytest
from django.db.models import Prefetch
from django.utils import timezone
from rest_framework import serializers

from approvals.models import ApprovalRequest, ChangeType, Review
from approvals.serializers import ApprovalRequestSerializer
from flags.models import FlagState
from tests.approvals.helpers import propose_many


def model_instances(ids):
    """The requests as model instances with everything DRF's rendering reads, newest first."""
    return (
        ApprovalRequest.objects.filter(pk__in=ids)
        .select_related("flag", "environment")
        .prefetch_related(
            Prefetch("reviews", queryset=Review.objects.order_by("created_at", "id")),
            Prefetch("flag__states", queryset=FlagState.objects.all()),
        )
        .newest_first()
    )


def drf_rendering(approval: ApprovalRequest) -> dict:
    """DRF's generic field-by-field rendering of the serializer's declared fields."""
    serializer = ApprovalRequestSerializer()
    return dict(serializers.ModelSerializer.to_representation(serializer, approval))


def plain(data) -> object:
    """ReturnDict/OrderedDict → dict, recursively, so key order is not what is compared."""
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [plain(item) for item in data]
    return data


@pytest.fixture
def approvals_in_every_shape(acme, developer, admin, second_admin, owner):
    pending_with_conflict, applied, rejected, two_reviews, scheduled, orphan = [
        ApprovalRequest.propose(
            flag=acme.flag,
            environment=environment,
            requestor=developer,
            change_type=ChangeType.ENABLE_WITH_ROLLOUT,
            payload={"percentage_rollout": 2500},
            description="ramp up ✓",
            execution_date=execution_date,
        )
        for environment, execution_date in [
            (acme.staging, None),
            (acme.production, None),
            (acme.production, None),
            (acme.production, None),
            (acme.production, timezone.now() + timedelta(days=1)),
            (acme.production, None),
        ]
    ]
    acme.flag.states.get(environment=acme.staging).change_directly(
        by=owner, changes={"percentage_rollout": 1000}
    )
    applied.approve(by=admin, note="ship it")
    rejected.reject(by=admin, note="not now")
    ApprovalRequest.objects.filter(pk=two_reviews.pk).update(required_approvals=2)
    two_reviews.approve(by=admin, ignore_conflicts=True)
    two_reviews.approve(by=second_admin, ignore_conflicts=True)
    scheduled.approve(by=admin, ignore_conflicts=True)
    ApprovalRequest.objects.filter(pk=orphan.pk).update(requestor=None)
    # Timestamps without microseconds, and with trailing zeros in them (the list reads them as
    # text, written by the database).
    whole_second = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    ApprovalRequest.objects.filter(pk=orphan.pk).update(
        created_at=whole_second, updated_at=whole_second.replace(microsecond=120000)
    )
    ApprovalRequest.objects.filter(pk=scheduled.pk).update(
        execution_date=whole_second.replace(microsecond=5) + timedelta(days=1)
    )
    Review.objects.filter(approval_request=applied).update(created_at=whole_second)
    return [pending_with_conflict, applied, rejected, two_reviews, scheduled, orphan]


@pytest.mark.django_db
def test_list_rows_render_like_drf_renders_the_model(approvals_in_every_shape):
    ids = [approval.pk for approval in approvals_in_every_shape]
    instances = model_instances(ids)
    rows = ApprovalRequest.objects.filter(pk__in=ids).newest_first().api_page(None, 0, len(ids))

    expected = [plain(drf_rendering(instance)) for instance in instances]
    actual = plain(ApprovalRequestSerializer(rows, many=True).data)

    assert actual == expected
    assert expected[-1]["conflicts"] == [
        {"field": "percentage_rollout", "base": 0, "current": 1000, "requested": 2500}
    ]
    assert {len(rendered["reviews"]) for rendered in expected} == {0, 1, 2}
    newest = actual[0]
    assert "." not in newest["created_at"] and newest["updated_at"].endswith(".120000Z")


@pytest.mark.django_db
def test_rendering_keeps_the_declared_field_order(acme, developer):
    (row,) = ApprovalRequest.objects.filter(pk=propose_many(acme, developer, 1)[0].pk).api_page(
        None, 0, 1
    )

    rendered = ApprovalRequestSerializer(row).data

    assert list(rendered) == ApprovalRequestSerializer.Meta.fields
