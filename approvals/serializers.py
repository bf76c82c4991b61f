from datetime import UTC

from rest_framework import serializers

from approvals.models import ApprovalRequest, ChangeType, Review, ReviewAction, Status
from flagship.serializers import StrictSerializer, UUIDStringField


def rfc3339(value):
    """A datetime as DRF's DateTimeField writes it here (UTC, `Z`), or None. Text is taken to
    be that already (the list reads timestamps so: `flagship.sql.read`)."""
    if value is None or isinstance(value, str):
        return value
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def uuid_or_none(value):
    return None if value is None else str(value)


class ReviewSerializer(serializers.ModelSerializer):
    reviewer_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Review
        fields = ["reviewer_id", "action", "note", "is_current", "created_at"]
        read_only_fields = fields


def review_representation(review) -> dict:
    """What ReviewSerializer writes, by hand (see ApprovalRequestSerializer.to_representation)."""
    return {
        "reviewer_id": uuid_or_none(review.reviewer_id),
        "action": review.action,
        "note": review.note,
        "is_current": review.is_current,
        "created_at": rfc3339(review.created_at),
    }


class ConflictSerializer(serializers.Serializer):
    field = serializers.CharField()
    base = serializers.JSONField(allow_null=True)
    current = serializers.JSONField(allow_null=True)
    requested = serializers.JSONField(allow_null=True)


class ApprovalRequestSerializer(serializers.ModelSerializer):
    """The approval object of SPEC §4."""

    org_id = serializers.UUIDField(read_only=True)
    project_id = serializers.UUIDField(read_only=True)
    requestor_id = serializers.UUIDField(read_only=True, allow_null=True)
    flag_id = serializers.UUIDField(read_only=True)
    flag_key = serializers.CharField(source="flag.key", read_only=True)
    env_id = serializers.UUIDField(source="environment_id", read_only=True)
    payload = serializers.JSONField(read_only=True)
    base_state = serializers.JSONField(read_only=True)
    reviews = ReviewSerializer(many=True, read_only=True)
    reviewer_id = serializers.UUIDField(read_only=True, allow_null=True)
    conflicts = ConflictSerializer(many=True, read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "org_id",
            "project_id",
            "requestor_id",
            "flag_id",
            "flag_key",
            "env_id",
            "change_type",
            "payload",
            "description",
            "status",
            "required_approvals",
            "approvals_count",
            "reviews",
            "reviewer_id",
            "review_note",
            "reviewed_at",
            "applied_at",
            "execution_date",
            "base_state",
            "base_version",
            "conflicts",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, approval):
        """The declared fields, written out by hand: a list page renders up to 100 of these and
        DRF's field-by-field machinery was most of its cost. The declarations above remain the
        schema; tests/approvals/test_serializers.py holds this to DRF's own rendering of the
        model. Takes ApprovalRow objects (`api_page`, `api_row`, `ApprovalRow.after_change`)."""
        return {
            "id": str(approval.id),
            "org_id": str(approval.org_id),
            "project_id": str(approval.project_id),
            "requestor_id": uuid_or_none(approval.requestor_id),
            "flag_id": str(approval.flag_id),
            "flag_key": approval.flag_key,
            "env_id": str(approval.environment_id),
            "change_type": approval.change_type,
            "payload": approval.payload,
            "description": approval.description,
            "status": approval.status,
            "required_approvals": approval.required_approvals,
            "approvals_count": approval.approvals_count,
            "reviews": [review_representation(review) for review in approval.reviews],
            "reviewer_id": uuid_or_none(approval.reviewer_id),
            "review_note": approval.review_note,
            "reviewed_at": rfc3339(approval.reviewed_at),
            "applied_at": rfc3339(approval.applied_at),
            "execution_date": rfc3339(approval.execution_date),
            "base_state": approval.base_state,
            "base_version": approval.base_version,
            "conflicts": [
                {
                    "field": str(conflict["field"]),
                    "base": conflict["base"],
                    "current": conflict["current"],
                    "requested": conflict["requested"],
                }
                for conflict in approval.conflicts
            ],
            "created_at": rfc3339(approval.created_at),
            "updated_at": rfc3339(approval.updated_at),
        }


class ApprovalCreateSerializer(StrictSerializer):
    flag_id = UUIDStringField()
    env_id = UUIDStringField()
    change_type = serializers.ChoiceField(
        choices=ChangeType.choices,
        error_messages={"invalid_choice": f"Must be one of: {', '.join(ChangeType.values)}."},
    )
    payload = serializers.JSONField(required=False, allow_null=True)
    description = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, default=""
    )
    execution_date = serializers.DateTimeField(required=False, allow_null=True)


class ReviewInputSerializer(StrictSerializer):
    action = serializers.ChoiceField(
        choices=ReviewAction.choices,
        error_messages={"invalid_choice": "Must be approve or reject."},
    )
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    ignore_conflicts = serializers.BooleanField(required=False, default=False)


class CancelInputSerializer(StrictSerializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


STATUS_VALUES = ", ".join(Status.values)
