import hashlib
import json
import uuid
from datetime import UTC

import pgtrigger
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit.context import current_request_metadata
from flagship.models import Organization, OrgScopedQuerySet


class ActorType(models.TextChoices):
    USER = "user", "User"
    SYSTEM = "system", "System"


class AuditEntryQuerySet(OrgScopedQuerySet):
    def for_api_list(self):
        return self.order_by("-created_at", "-id")

    def chain_of(self, org_id):
        return self.filter(org_id=org_id).order_by("sequence")

    def lock_chain_head(self, org_id) -> "AuditEntry | None":
        """The org's newest entry, read after locking the org row so that concurrent writers
        append one after another instead of forking the chain. NO KEY UPDATE does not wait for
        the key-share locks that inserting rows referencing the org takes."""
        list(Organization.objects.select_for_update(no_key=True).filter(pk=org_id).values("pk"))
        return self.chain_of(org_id).only("sequence", "entry_hash").last()


class AuditEntry(models.Model):
    """One state change, written in the same transaction as the change. Append-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # PROTECT: the rows are append-only, so their org and actor can never be deleted under them.
    org = models.ForeignKey(
        "flagship.Organization", on_delete=models.PROTECT, related_name="audit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
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
    # The org's entries form a hash chain: entry_hash covers this entry's fields and the
    # previous entry's hash, so editing or removing an entry breaks every later link.
    sequence = models.PositiveBigIntegerField(editable=False)
    previous_hash = models.CharField(max_length=64, blank=True, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(actor_type__in=ActorType.values), name="audit_actor_type_valid"
            ),
            models.UniqueConstraint(
                fields=["org", "sequence"], name="audit_sequence_unique_per_org"
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="audit_append_only", operation=pgtrigger.Update | pgtrigger.Delete
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

    def append_to_chain(self, head: "AuditEntry | None") -> None:
        self.sequence = head.sequence + 1 if head else 1
        self.previous_hash = head.entry_hash if head else ""
        self.entry_hash = hash_entry(self)


def hash_entry(entry) -> str:
    """sha256 over a canonical JSON of the entry's fields and the previous entry's hash."""
    fields = {
        "id": str(entry.id),
        "org_id": str(entry.org_id),
        "sequence": entry.sequence,
        "actor_id": str(entry.actor_id) if entry.actor_id else None,
        "actor_type": entry.actor_type,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "before_state": entry.before_state,
        "after_state": entry.after_state,
        "metadata": entry.metadata,
        "created_at": entry.created_at.astimezone(UTC).isoformat(),
        "previous_hash": entry.previous_hash,
    }
    canonical = json.dumps(
        _integral_floats_as_ints(as_stored_json(fields)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_stored_json(value):
    """The value as it reads back from a JSON column (dates and UUIDs become strings)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _integral_floats_as_ints(value):
    # PostgreSQL's jsonb may read 1e16 back as 10000000000000000; both must hash alike.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value


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
    entry = AuditEntry(
        org_id=org_id,
        actor=actor,
        actor_type=ActorType.USER if actor is not None else ActorType.SYSTEM,
        action=action,
        resource_type=getattr(resource, "audit_resource_type", resource._meta.model_name),
        resource_id=str(getattr(resource, "audit_resource_id", resource.pk)),
        before_state=as_stored_json(before),
        after_state=as_stored_json(after),
        metadata=as_stored_json({**current_request_metadata(), **(metadata or {})}),
    )
    with transaction.atomic(savepoint=False):
        entry.append_to_chain(AuditEntry.objects.lock_chain_head(org_id))
        entry.save(force_insert=True)
    return entry
