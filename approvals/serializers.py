from rest_framework import serializers

from approvals.models import ApprovalRequest, ChangeType, Review, ReviewAction, Status
from flagship.serializers import StrictSerializer, UUIDStringField


class ReviewSerializer(serializers.ModelSerializer):
    reviewer_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Review
        fields = ["reviewer_id", "action", "note", "is_current", "created_at"]
        read_only_fields = fields


class ConflictSerializer(serializers.Serializer):
    field = serializers.CharField()
    base = serializers.JSONField(allow_null=True)
    current = serializers.JSONField(allow_null=True)
    requested = serializers.JSONField(allow_null=True)


class ApprovalRequestSerializer(serializers.ModelSerializer):
    """The approval object of SPEC §4. Expects `ApprovalRequest.objects.with_details()`."""

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
