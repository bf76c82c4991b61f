from rest_framework import serializers

from audit.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    org_id = serializers.UUIDField(read_only=True)
    actor_id = serializers.UUIDField(read_only=True, allow_null=True)
    before_state = serializers.JSONField(read_only=True, allow_null=True)
    after_state = serializers.JSONField(read_only=True, allow_null=True)
    metadata = serializers.JSONField(read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "org_id",
            "actor_id",
            "actor_type",
            "action",
            "resource_type",
            "resource_id",
            "before_state",
            "after_state",
            "metadata",
            "created_at",
        ]
        read_only_fields = fields
