import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models, transaction
from django.utils import timezone

from flagship.errors import NotFound, StateConflict


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


class OrgScopedQuerySet(models.QuerySet):
    """Objects of other organizations do not exist for a user: they are simply not in here."""

    org_lookup = "org"

    def visible_to(self, user):
        org_id = getattr(user, "org_id", None)
        if org_id is None:
            return self.none()
        return self.filter(**{f"{self.org_lookup}_id": org_id})


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A user needs an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    """A person; logs in with the email address. Belongs to one organization via Membership."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(
        default=False, help_text="Can log into the Django admin (still bound by the role)."
    )
    date_joined = models.DateTimeField(default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email

    @property
    def membership_or_none(self) -> "Membership | None":
        try:
            return self.membership
        except Membership.DoesNotExist:
            return None

    @property
    def role(self) -> str | None:
        membership = self.membership_or_none
        return membership.role if membership else None

    @property
    def org_id(self):
        membership = self.membership_or_none
        return membership.org_id if membership else None


class Membership(models.Model):
    """Ties a user to their single organization with a role."""

    audit_resource_type = "member"

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="membership")
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]
        indexes = [models.Index(fields=["org", "role"])]

    def __str__(self):
        return f"{self.user} ({self.role} of {self.org})"

    @property
    def audit_resource_id(self):
        return self.user_id

    def audit_snapshot(self) -> dict:
        return {
            "user_id": str(self.user_id),
            "email": self.user.email,
            "name": self.user.name,
            "role": self.role,
        }


def _owner_count(org_id) -> int:
    return Membership.objects.filter(org_id=org_id, role=Role.OWNER).count()


class MembershipActions:
    """Member management as transitions: each checks the caller's role, locks the membership,
    keeps at least one owner, and writes its audit entry in the same transaction."""

    @staticmethod
    def add(*, by, email: str, name: str, password: str, role: str) -> "Membership":
        from audit.models import record
        from flagship import permissions

        permissions.MANAGE.require(by)
        if role == Role.OWNER:
            permissions.GRANT_OWNER.require(by)
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, name=name)
            membership = Membership.objects.create(user=user, org_id=by.org_id, role=role)
            record(
                org_id=membership.org_id,
                actor=by,
                action="member.added",
                resource=membership,
                after=membership.audit_snapshot(),
            )
        return membership

    @staticmethod
    def update(*, by, membership: "Membership", role: str | None = None, name=None) -> None:
        from audit.models import record
        from flagship import permissions

        permissions.MANAGE.require(by)
        with transaction.atomic():
            locked = _lock_member(by, membership)
            before = locked.audit_snapshot()
            if role is not None and role != locked.role:
                if Role.OWNER in (role, locked.role):
                    permissions.GRANT_OWNER.require(by)
                if locked.role == Role.OWNER:
                    _lock_owners(locked.org_id)
                    if _owner_count(locked.org_id) <= 1:
                        raise StateConflict("an organization needs at least one owner")
                locked.role = role
                locked.save(update_fields=["role"])
            if name is not None and name != locked.user.name:
                locked.user.name = name
                locked.user.save(update_fields=["name"])
            after = locked.audit_snapshot()
            if after != before:
                action = (
                    "member.role_changed" if before["role"] != after["role"] else "member.updated"
                )
                record(
                    org_id=locked.org_id,
                    actor=by,
                    action=action,
                    resource=locked,
                    before=before,
                    after=after,
                )
        membership.refresh_from_db()

    @staticmethod
    def remove(*, by, membership: "Membership") -> None:
        """Removes the person from the organization and deactivates their login, so their
        tokens stop working at once."""
        from audit.models import record
        from flagship import permissions

        permissions.MANAGE.require(by)
        with transaction.atomic():
            locked = _lock_member(by, membership)
            if locked.role == Role.OWNER:
                permissions.GRANT_OWNER.require(by)
                _lock_owners(locked.org_id)
                if _owner_count(locked.org_id) <= 1:
                    raise StateConflict("an organization needs at least one owner")
            record(
                org_id=locked.org_id,
                actor=by,
                action="member.removed",
                resource=locked,
                before=locked.audit_snapshot(),
            )
            user = locked.user
            locked.delete()
            user.is_active = False
            user.save(update_fields=["is_active"])


def _lock_member(by, membership: "Membership") -> "Membership":
    locked = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if locked.org_id != by.org_id:
        raise NotFound("member not found")
    return locked


def _lock_owners(org_id) -> None:
    """Serializes owner demotions/removals so two at once cannot leave an org without owners."""
    list(
        Membership.objects.select_for_update()
        .filter(org_id=org_id, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
