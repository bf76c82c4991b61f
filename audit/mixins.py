from django.db import transaction

from flagship import permissions
from flagship.errors import NotFound


def record(**entry):
    # Imported on use: audit.models builds its own audited models on this mixin.
    from audit.models import record

    return record(**entry)


class AuditedModel:
    """Create, update and delete that check who may, and write their audit entry in the same
    transaction, for every interface (API, admin, commands).

    A model using it names its `audit_resource_type` (also the action prefix, e.g.
    "project.updated"), the abilities each write needs, and defines `audit_snapshot()`,
    `org_id` and, where creating it creates more rows, `_create_rows(**fields)`. `by=None` is
    the system itself (bootstrap commands), which no role check applies to.
    """

    audit_resource_type: str
    create_ability: "permissions.Ability"
    change_ability: "permissions.Ability"
    delete_ability: "permissions.Ability"

    @staticmethod
    def _check(ability, by, instance=None) -> None:
        if by is None:
            return
        ability.require(by)
        if instance is not None and instance.org_id != by.org_id:
            raise NotFound(f"{instance.audit_resource_type.replace('_', ' ')} not found")

    def audit_action_for(self, before: dict, after: dict) -> str:
        return f"{self.audit_resource_type}.updated"

    @classmethod
    def _create_rows(cls, **fields):
        return cls.objects.create(**fields)

    @classmethod
    def create_audited(cls, *, by, **fields):
        cls._check(cls.create_ability, by)
        with transaction.atomic():
            instance = cls._create_rows(**fields)
            cls._check(cls.create_ability, by, instance)  # rolls back a foreign creation
            record(
                org_id=instance.org_id,
                actor=by,
                action=f"{cls.audit_resource_type}.created",
                resource=instance,
                after=instance.audit_snapshot(),
            )
        return instance

    def update_audited(self, *, by, changes: dict) -> None:
        self._check(self.change_ability, by, self)
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
                    action=locked.audit_action_for(before, after),
                    resource=locked,
                    before=before,
                    after=after,
                )
        self.refresh_from_db()

    def delete_audited(self, *, by) -> None:
        self._check(self.delete_ability, by, self)
        with transaction.atomic():
            record(
                org_id=self.org_id,
                actor=by,
                action=f"{self.audit_resource_type}.deleted",
                resource=self,
                before=self.audit_snapshot(),
            )
            self.delete()
