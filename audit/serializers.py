from rest_framework import serializers

from audit.models import ALL_EVENTS, WEBHOOK_EVENTS, AuditEntry, Webhook, WebhookDelivery
from audit.webhooks import resolve_target
from flagship.serializers import StrictModelSerializer


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


class WebhookSerializer(StrictModelSerializer):
    """A webhook as the API shows it. The secret is write-only: accepted, never returned."""

    org_id = serializers.UUIDField(read_only=True)
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), allow_empty=False, max_length=50
    )
    secret = serializers.CharField(
        write_only=True,
        min_length=16,
        max_length=200,
        help_text="Signs every delivery (X-Flagship-Signature: sha256=HMAC of the body).",
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "org_id",
            "url",
            "events",
            "secret",
            "is_active",
            "secret_updated_at",
            "created_at",
        ]
        read_only_fields = ["id", "org_id", "secret_updated_at", "created_at"]

    def validate_url(self, value):
        resolve_target(value)
        return value

    def validate_events(self, value):
        allowed = [*WEBHOOK_EVENTS, ALL_EVENTS]
        unknown = [event for event in value if event not in allowed]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown event(s) {', '.join(unknown)}; must be one of: {', '.join(allowed)}."
            )
        return list(dict.fromkeys(value))


class WebhookDeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.UUIDField(read_only=True)
    payload = serializers.JSONField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event_type",
            "event_id",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "payload",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
