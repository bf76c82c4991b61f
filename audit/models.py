import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from audit.context import current_request_metadata
from flagship.models import OrgScopedQuerySet


class ActorType(models.TextChoices):
    USER = "user", "User"
    SYSTEM = "system", "System"


class AuditEntryQuerySet(OrgScopedQuerySet):
    def for_api_list(self):
        return self.order_by("-created_at", "-id")


class AuditEntry(models.Model):
    """One state change, written in the same transaction as the change. Append-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(
        "flagship.Organization", on_delete=models.CASCADE, related_name="audit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_type = models.CharField(max_length=8, choices=ActorType.choices, default=ActorType.USER)
    action = models.CharField(max_length=64)
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    before_state = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after_state = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(actor_type__in=ActorType.values), name="audit_actor_type_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["org", "-created_at"], name="audit_org_created"),
            models.Index(fields=["org", "action", "-created_at"], name="audit_org_action"),
            models.Index(fields=["org", "resource_type", "resource_id"], name="audit_org_resource"),
            models.Index(fields=["org", "actor", "-created_at"], name="audit_org_actor"),
        ]

    def __str__(self):
        return f"{self.action} {self.resource_type}:{self.resource_id}"


def record(
    *,
    org_id,
    actor,
    action: str,
    resource,
    before=None,
    after=None,
    metadata: dict | None = None,
) -> AuditEntry:
    """Writes one audit entry. Call it inside the transaction that makes the change.

    `actor` is a user, or None for the system (the scheduler). The request's ip, user agent and
    interface are added to the metadata when there is a request.
    """
    return AuditEntry.objects.create(
        org_id=org_id,
        actor=actor,
        actor_type=ActorType.USER if actor is not None else ActorType.SYSTEM,
        action=action,
        resource_type=getattr(resource, "audit_resource_type", resource._meta.model_name),
        resource_id=str(getattr(resource, "audit_resource_id", resource.pk)),
        before_state=before,
        after_state=after,
        metadata={**current_request_metadata(), **(metadata or {})},
    )
