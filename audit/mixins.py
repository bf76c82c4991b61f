from django.db import transaction


def record(**entry):
    # Imported on use: audit.models builds its own audited models on this mixin.
    from audit.models import record

    return record(**entry)


class AuditedModel:
    """Create, update and delete that write their audit entry in the same transaction.

    A model using it names its `audit_resource_type` (also the action prefix, e.g.
    "project.updated") and defines `audit_snapshot()`, `org_id` and, where creating it
    creates more rows, `_create_rows(**fields)`.
    """

    audit_resource_type: str

    @classmethod
    def _create_rows(cls, **fields):
        return cls.objects.create(**fields)

    @classmethod
    def create_audited(cls, *, by, **fields):
        with transaction.atomic():
            instance = cls._create_rows(**fields)
            record(
                org_id=instance.org_id,
                actor=by,
                action=f"{cls.audit_resource_type}.created",
                resource=instance,
                after=instance.audit_snapshot(),
            )
        return instance

    def update_audited(self, *, by, changes: dict, action: str | None = None) -> None:
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            before = locked.audit_snapshot()
            for field, value in changes.items():
                setattr(locked, field, value)
            locked.save()
            after = locked.audit_snapshot()
            if after != before:
                record(
                    org_id=locked.org_id,
                    actor=by,
                    action=action or f"{self.audit_resource_type}.updated",
                    resource=locked,
                    before=before,
                    after=after,
                )
        self.refresh_from_db()

    def delete_audited(self, *, by) -> None:
        with transaction.atomic():
            record(
                org_id=self.org_id,
                actor=by,
                action=f"{self.audit_resource_type}.deleted",
                resource=self,
                before=self.audit_snapshot(),
            )
            self.delete()
