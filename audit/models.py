import hashlib
import json
import uuid
from datetime import UTC
from functools import cache
from typing import NamedTuple

import pgtrigger
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from audit.context import current_request_metadata
from audit.mixins import AuditedModel
from flagship import outbox, permissions, sql
from flagship.models import OrgScopedQuerySet


class ActorType(models.TextChoices):
    USER = "user", "User"
    SYSTEM = "system", "System"


class AuditEntryQuerySet(OrgScopedQuerySet):
    def for_api_list(self):
        return self.order_by("-created_at", "-id")

    def chain_of(self, org_id):
        return self.filter(org_id=org_id).order_by("sequence")

    def lock_chain(self, org_id) -> tuple["ChainHead", list["Webhook"]]:
        """The org's newest link, read after locking the org row so that concurrent writers
        append one after another instead of forking the chain, and the org's active webhooks.
        NO KEY UPDATE does not wait for the key-share locks that inserting rows referencing
        the org takes.

        A statement's snapshot is taken before it waits for a lock, so a head read by the
        statement that locks could miss the entry the lock holder just committed: the head is
        read by a statement of its own, after the lock. On PostgreSQL both run inside the
        function `audit_lock_chain` (migration 0007), one round trip for every change; the
        webhooks are read by the statement that calls it (their rows are not the chain's).
        Plain SQL: building these statements through the ORM cost several times what running
        them does."""
        db = sql.thread_connection()
        statements = chain_statements(db.vendor)
        org = self.model._meta.get_field("org").get_db_prep_value(org_id, db)
        with db.cursor() as cursor:
            cursor.execute(statements.head, [org, org])
            rows = cursor.fetchall()
        sequence, entry_hash = rows[0][:2]
        webhooks = [
            sql.instances_from(row[2:], statements.webhook_readers)[0]
            for row in rows
            if row[2] is not None  # no active webhook: one row, of the head alone
        ]
        return ChainHead(sequence or 0, entry_hash or ""), webhooks


class ChainStatements(NamedTuple):
    head: str  # the head with each active webhook: one row per webhook, or one without
    webhook_readers: list


@cache
def chain_statements(vendor: str) -> ChainStatements:
    """`lock_chain`'s statements, built once per process; `vendor` keys the cache."""
    qn = connection.ops.quote_name
    webhooks = (
        f"LEFT OUTER JOIN {sql.table(Webhook, 'webhook')} "
        'ON "webhook"."org_id" = %s AND "webhook"."is_active"'
    )
    webhook_columns = ", ".join(sql.columns(Webhook, "webhook"))
    readers = [(Webhook, sql.model_converters(Webhook))]
    if vendor == "postgresql":
        return ChainStatements(
            head=(
                f'SELECT "head"."sequence", "head"."entry_hash", {webhook_columns} '
                f'FROM audit_lock_chain(%s) "head" {webhooks}'
            ),
            webhook_readers=readers,
        )
    # SQLite has no row locks: a transaction that writes holds the whole database. The head
    # query below is the one audit_lock_chain runs (migration 0007): change them together.
    table = qn(AuditEntry._meta.db_table)
    newest = (
        f"SELECT sequence, entry_hash FROM {table} WHERE org_id = %s ORDER BY sequence DESC LIMIT 1"
    )
    return ChainStatements(
        head=(
            f'SELECT "head"."sequence", "head"."entry_hash", {webhook_columns} '
            f'FROM (SELECT 1) "one" LEFT OUTER JOIN ({newest}) "head" ON 1 = 1 {webhooks}'
        ),
        webhook_readers=readers,
    )


class ChainHead(NamedTuple):
    """The newest link of an org's chain; (0, "") before the first entry."""

    sequence: int
    entry_hash: str


class AuditEntry(models.Model):
    """One state change, written in the same transaction as the change. Append-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # PROTECT: the rows are append-only, so their org and actor can never be deleted under them.
    # No index of its own on org: it leads every index in Meta, which serve its lookups, and
    # each entry written would update one more index.
    org = models.ForeignKey(
        "flagship.Organization",
        on_delete=models.PROTECT,
        related_name="audit_entries",
        db_index=False,
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

    def append_to_chain(self, head: "ChainHead | AuditEntry") -> None:
        self.sequence = head.sequence + 1
        self.previous_hash = head.entry_hash
        self.entry_hash = hash_entry(self)


def hash_entry(entry) -> str:
    """sha256 over a canonical JSON of the entry's fields and the previous entry's hash.

    The JSON fields must hold what a JSON column reads back (`audit_entry` stores them so, and
    a row read from the database has them so): converting them again on every entry written
    cost a review as much as hashing it."""
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
        _integral_floats_as_ints(fields),
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


def audit_entry(
    *,
    org_id,
    actor,
    action: str,
    resource,
    before=None,
    after=None,
    metadata: dict | None = None,
) -> AuditEntry:
    """An unsaved audit entry; `record_all` chains and writes it.

    `actor` is a user, or None for the system (the scheduler). The request's ip, user agent and
    interface are added to the metadata when there is a request.
    """
    before, after, metadata = as_stored_json(
        [before, after, {**current_request_metadata(), **(metadata or {})}]
    )
    return AuditEntry(
        org_id=org_id,
        actor=actor,
        actor_type=ActorType.USER if actor is not None else ActorType.SYSTEM,
        action=action,
        resource_type=getattr(resource, "audit_resource_type", resource._meta.model_name),
        resource_id=str(getattr(resource, "audit_resource_id", resource.pk)),
        before_state=before,
        after_state=after,
        metadata=metadata,
    )


def record(**fields) -> AuditEntry:
    """Writes one audit entry (see `audit_entry` for the fields). Call it inside the
    transaction that makes the change."""
    entry = audit_entry(**fields)
    record_all([entry])
    return entry


def record_all(entries: list[AuditEntry]) -> None:
    """Writes entries of one org, in this order, inside the transaction that makes the change.

    A change that writes several entries (an approval that applies the flag state) locks the
    org's chain, reads its head and its webhooks once for all of them, and inserts them in one
    INSERT (held back, inside `sql.writes_together`, until the block's writes run). The audit
    log is the webhooks' event stream: the deliveries commit or roll back with it."""
    (org_id,) = {entry.org_id for entry in entries}
    held = sql.held_writes()
    # Entries still held are the chain's newest: the database's head does not show them yet.
    held_chain_key = ("audit chain", org_id)
    with transaction.atomic(savepoint=False):
        chain = held.memo.get(held_chain_key) if held is not None else None
        head, webhooks = chain or AuditEntry.objects.lock_chain(org_id)
        for entry in entries:
            entry.append_to_chain(head)
            head = entry
        sql.insert(entries)
        sql.insert(WebhookDelivery.for_entries(entries, webhooks))
        if held is not None:
            held.memo[held_chain_key] = (head, webhooks)


# ----- outbound webhooks -----------------------------------------------------------------------

WEBHOOK_EVENTS = (
    "approval.created",
    "approval.approved",
    "approval.rejected",
    "approval.cancelled",
    "approval.schedule_conflicted",
    "flag.approved_change_applied",
    "flag_state.updated",
)
ALL_EVENTS = "*"


class WebhookQuerySet(OrgScopedQuerySet):
    def for_api_list(self):
        return self.order_by("-created_at", "-id")


class Webhook(AuditedModel, models.Model):
    """An HTTP endpoint of another system that hears about the audit actions it subscribes to."""

    audit_resource_type = "webhook"
    create_ability = change_ability = delete_ability = permissions.MANAGE

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(
        "flagship.Organization", on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text=f"Audit actions, or {ALL_EVENTS!r}.")
    # Signs each body (HMAC-SHA256); the API accepts it but never shows it.
    secret = models.CharField(max_length=200)
    secret_updated_at = models.DateTimeField(default=timezone.now, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["org", "is_active"], name="webhook_org_active")]

    def __str__(self):
        return self.url

    def audit_snapshot(self) -> dict:
        # Never the secret: the audit log is readable by every member. Its rotation shows as a
        # new secret_updated_at.
        return {
            "url": self.url,
            "events": self.events,
            "is_active": self.is_active,
            "secret_updated_at": self.secret_updated_at,
        }

    def subscribes_to(self, action: str) -> bool:
        return ALL_EVENTS in self.events or action in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = outbox.PENDING, "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = outbox.FAILED, "Failed"


class WebhookDeliveryQuerySet(outbox.OutboxQuerySet):
    def newest_first(self):
        return self.order_by("-created_at", "-id")


class WebhookDelivery(outbox.OutboxItem):
    """The webhook outbox: one event to send to one webhook, retried by the worker
    (`audit.webhooks.deliver_next_due`) until delivered or out of attempts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    event_id = models.UUIDField(help_text="The audit entry this delivery announces.")
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_webhook"),
        ]

    def __str__(self):
        return f"{self.event_type} to {self.webhook_id} ({self.status})"

    @classmethod
    def for_entries(cls, entries: list[AuditEntry], webhooks) -> list["WebhookDelivery"]:
        """The unsaved deliveries of entries: one per entry and webhook (the active webhooks of
        the entries' org) subscribed to its action."""
        return [
            cls(
                webhook=webhook,
                event_type=entry.action,
                event_id=entry.pk,
                payload=event_payload(entry),
            )
            for entry in entries
            for webhook in webhooks
            if webhook.subscribes_to(entry.action)
        ]


def event_payload(entry: AuditEntry) -> dict:
    return {
        "type": entry.action,
        "id": str(entry.pk),
        "org_id": str(entry.org_id),
        "occurred_at": entry.created_at,
        "data": {
            "resource": {"type": entry.resource_type, "id": entry.resource_id},
            "actor": {
                "type": entry.actor_type,
                "id": str(entry.actor_id) if entry.actor_id else None,
            },
            "before": entry.before_state,
            "after": entry.after_state,
            "metadata": entry.metadata,
        },
    }
