import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.utils import timezone

from audit.mixins import AuditedModel
from flagship import permissions, sql
from flagship.errors import InvalidInput, StateConflict
from flagship.models import Organization, OrgScopedQuerySet

FLAG_KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
MAX_BASIS_POINTS = 10_000

# The flag-state fields a direct change or an approval request may touch.
STATE_FIELDS = ("enabled", "default_value", "rules", "percentage_rollout", "variants")


class ProjectQuerySet(OrgScopedQuerySet):
    pass


class Project(AuditedModel, models.Model):
    audit_resource_type = "project"
    create_ability = change_ability = delete_ability = permissions.MANAGE

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "slug"], name="project_slug_unique_per_org"),
        ]

    def __str__(self):
        return self.name

    def audit_snapshot(self) -> dict:
        return {"name": self.name, "slug": self.slug}


class EnvironmentQuerySet(OrgScopedQuerySet):
    org_lookup = "project__org"


class Environment(AuditedModel, models.Model):
    audit_resource_type = "environment"
    create_ability = change_ability = delete_ability = permissions.MANAGE

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    color = models.CharField(
        max_length=7,
        default="#6b7280",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex color such as #22c55e.")],
    )
    requires_approval = models.BooleanField(default=False)
    min_approvals = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "slug"], name="environment_slug_unique_per_project"
            ),
            models.CheckConstraint(
                condition=models.Q(min_approvals__gte=1, min_approvals__lte=10),
                name="environment_min_approvals_1_to_10",
            ),
        ]

    def __str__(self):
        return f"{self.project.slug}/{self.slug}"

    @property
    def org_id(self):
        return self.project.org_id

    def audit_snapshot(self) -> dict:
        return {
            "project_id": str(self.project_id),
            "name": self.name,
            "slug": self.slug,
            "color": self.color,
            "requires_approval": self.requires_approval,
            "min_approvals": self.min_approvals,
        }

    def audit_action_for(self, before: dict, after: dict) -> str:
        protection = ("requires_approval", "min_approvals")
        if any(before[field] != after[field] for field in protection):
            return "environment.protection_changed"
        return "environment.updated"

    @classmethod
    def _create_rows(cls, *, project, **fields) -> "Environment":
        """Creates the environment with a default state for every flag of its project."""
        environment = cls.objects.create(project=project, **fields)
        FlagState.objects.bulk_create(
            FlagState(flag=flag, environment=environment) for flag in project.flags.all()
        )
        return environment


class FlagType(models.TextChoices):
    BOOLEAN = "boolean", "Boolean"
    STRING = "string", "String"
    NUMBER = "number", "Number"
    JSON = "json", "JSON"


class FlagQuerySet(OrgScopedQuerySet):
    org_lookup = "project__org"


class Flag(AuditedModel, models.Model):
    audit_resource_type = "flag"
    create_ability = change_ability = permissions.EDIT_FLAGS
    # Deleting a flag removes it from every environment, protected ones included.
    delete_ability = permissions.DELETE_FLAGS

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flags")
    key = models.CharField(
        max_length=100,
        validators=[
            RegexValidator(
                FLAG_KEY_PATTERN,
                "Use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.",
            )
        ],
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    flag_type = models.CharField(max_length=16, choices=FlagType.choices, default=FlagType.BOOLEAN)
    default_value = models.JSONField(default=None, null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlagQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="flag_key_unique_per_project"),
            models.CheckConstraint(
                condition=models.Q(flag_type__in=FlagType.values), name="flag_type_valid"
            ),
        ]

    def __str__(self):
        return self.key

    @property
    def org_id(self):
        return self.project.org_id

    def audit_snapshot(self) -> dict:
        return {
            "project_id": str(self.project_id),
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "flag_type": self.flag_type,
            "default_value": self.default_value,
            "tags": self.tags,
        }

    def clean(self):
        """Checked by model forms (the admin); the API's serializer makes the same checks."""
        from flags.validation import type_mismatch

        problem = self.default_value is not None and type_mismatch(
            self.flag_type, self.default_value
        )
        if problem:
            raise ValidationError({"default_value": problem})
        if not isinstance(self.tags, list) or not all(isinstance(tag, str) for tag in self.tags):
            raise ValidationError({"tags": 'Must be a list of strings, such as ["payments"].'})

    def update_details(self, *, by, changes: dict) -> None:
        """Edits name, description, tags or the default value. The default value is what a
        disabled flag serves everywhere, so while any environment of the project is protected it
        may only change through approval requests (as each state's `default_value`)."""
        if "default_value" in changes and changes["default_value"] != self.default_value:
            protected = self.project.environments.filter(requires_approval=True).first()
            if protected is not None:
                raise StateConflict(
                    f"environment '{protected.name}' requires an approval request for flag state "
                    "changes; propose the default_value there instead of changing the flag's"
                )
        self.update_audited(by=by, changes=changes)

    @classmethod
    def _create_rows(cls, *, project, **fields) -> "Flag":
        """Creates the flag with a default state (disabled, rollout 0) in every environment."""
        flag = cls.objects.create(project=project, **fields)
        FlagState.objects.bulk_create(
            FlagState(flag=flag, environment=environment)
            for environment in project.environments.all()
        )
        return flag


class FlagStateQuerySet(OrgScopedQuerySet):
    org_lookup = "flag__project__org"

    def of(self, flag_id, environment_id, *, lock: bool = False) -> "FlagState":
        """The flag's state in the environment, locked until the transaction ends when `lock`.
        Read through `flagship.sql`: every proposal and approval reads it. Every flag gets a
        state per environment when either is created; one that went missing all the same is
        created here."""
        key = {"flag": flag_id, "environment": environment_id}
        state = (
            sql.lock_one(FlagState, **key)
            if lock
            else next(iter(sql.select(FlagState, **key)), None)
        )
        if state is None:
            states = self.select_for_update() if lock else self
            state, _ = states.get_or_create(flag_id=flag_id, environment_id=environment_id)
        return state


class FlagState(models.Model):
    """A flag's configuration in one environment. `version` rises by one on every write."""

    audit_resource_type = "flag_state"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The unique (flag, environment) constraint's index serves lookups by flag.
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states", db_index=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="states")
    enabled = models.BooleanField(default=False)
    default_value = models.JSONField(default=None, null=True, blank=True)
    rules = models.JSONField(default=list, blank=True)
    percentage_rollout = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_BASIS_POINTS)]
    )
    variants = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlagStateQuerySet.as_manager()

    class Meta:
        ordering = ["environment__created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"], name="flag_state_unique_per_environment"
            ),
            models.CheckConstraint(
                condition=models.Q(percentage_rollout__gte=0, percentage_rollout__lte=10_000),
                name="flag_state_rollout_basis_points",
            ),
        ]

    def __str__(self):
        return f"{self.flag.key} in {self.environment.slug}"

    def snapshot(self, fields=STATE_FIELDS) -> dict:
        return {field: getattr(self, field) for field in fields}

    def write(self, changes: dict) -> tuple[dict, dict]:
        """Merges `changes` into this state and writes them (`sql.update`, held back inside
        `sql.writes_together`), bumping the version. The caller holds the row lock, so the
        version read with it is still the latest.

        Returns the full state before and after, for the audit entry.
        """
        before = self.full_snapshot()
        for field, value in changes.items():
            if field not in STATE_FIELDS:
                raise ValueError(f"{field} is not a flag-state field")
            setattr(self, field, value)
        self.version += 1
        sql.update(self, [*changes, "version", "updated_at"])
        return before, self.full_snapshot()

    def full_snapshot(self) -> dict:
        return {**self.snapshot(), "version": self.version}

    def change_directly(self, *, by, changes: dict, expected_version: int | None = None) -> None:
        """A direct edit (PUT). Refused in protected environments: there the only way in is an
        applied approval request."""
        from audit.models import record
        from flags.validation import validate_state_changes
        from flagship import permissions

        permissions.EDIT_FLAGS.require(by)
        refuse_if_protected(self.environment)
        cleaned = validate_state_changes(self.flag, changes)
        if not cleaned:
            raise InvalidInput(
                f"give at least one of: {', '.join(STATE_FIELDS)}",
                fields={"non_field_errors": ["No flag-state field given."]},
            )
        with transaction.atomic():
            locked = (
                FlagState.objects.select_for_update(of=("self",))
                .select_related("environment__project", "flag")
                .get(pk=self.pk)
            )
            refuse_if_protected(locked.environment)
            if expected_version is not None and expected_version != locked.version:
                raise StateConflict(
                    f"flag state has changed since version {expected_version} "
                    f"(now {locked.version}); reload it and try again"
                )
            before, after = locked.write(cleaned)
            record(
                org_id=locked.environment.project.org_id,
                actor=by,
                action="flag_state.updated",
                resource=locked,
                before=before,
                after=after,
                metadata={"flag_key": locked.flag.key, "environment": locked.environment.slug},
            )
        self.refresh_from_db()


def refuse_if_protected(environment: Environment) -> None:
    if environment.requires_approval:
        raise StateConflict(
            f"environment '{environment.name}' requires an approval request for flag state changes"
        )
