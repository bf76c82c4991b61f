"""Who may do what (SPEC §2), written once and used by the API, the review page and the admin.

Roles are read from the database with the user on every request, so a demotion takes effect at
once rather than when a token expires.
"""

from dataclasses import dataclass

from rest_framework import permissions

from flagship.errors import NotPermitted
from flagship.models import Role


@dataclass(frozen=True)
class Ability:
    roles: frozenset[str]
    description: str

    def allows(self, user) -> bool:
        return role_of(user) in self.roles

    def refusal(self, user) -> str | None:
        """Why the user may not do this (the message `require` raises), or None."""
        if self.allows(user):
            return None
        return f"your role ({role_of(user) or 'none'}) does not allow you to {self.description}"

    def require(self, user) -> None:
        refusal = self.refusal(user)
        if refusal:
            raise NotPermitted(refusal)


ALL_ROLES = frozenset(Role.values)
EDITOR_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})

READ = Ability(ALL_ROLES, "read this organization's data")
EDIT_FLAGS = Ability(EDITOR_ROLES, "change flags or flag states")
PROPOSE = Ability(EDITOR_ROLES, "create approval requests")
REVIEW = Ability(MANAGER_ROLES, "review approval requests")
CANCEL = Ability(EDITOR_ROLES, "cancel approval requests")
MANAGE = Ability(MANAGER_ROLES, "manage projects, environments, protection settings or members")
DELETE_FLAGS = Ability(MANAGER_ROLES, "delete flags")
GRANT_OWNER = Ability(frozenset({Role.OWNER}), "grant or revoke the owner role")


def role_of(user) -> str | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.role


def can_review(user, approval) -> bool:
    return REVIEW.allows(user) and approval.requestor_id != user.pk


def can_cancel(user, approval) -> bool:
    """Owners and admins cancel any request; developers only their own."""
    if MANAGE.allows(user):
        return True
    return CANCEL.allows(user) and approval.requestor_id == user.pk


CANCEL_OWN_ONLY = "developers can cancel only their own requests"


def require_cancel(user, approval) -> None:
    CANCEL.require(user)
    if not can_cancel(user, approval):
        raise NotPermitted(CANCEL_OWN_ONLY)


class RoleAllowsAction(permissions.BasePermission):
    """Checks the view's `abilities` map ({action name: Ability}) against the caller's role.

    Safe methods default to READ; any other action without an entry is refused, so a new
    endpoint is closed until it names who may use it.
    """

    def has_permission(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        method = request.method.lower()
        action_map = getattr(view, "action_map", None)
        if (action_map is not None and method not in action_map) or not hasattr(view, method):
            return True  # no handler: let the view answer 405
        abilities = getattr(view, "abilities", {})
        action = getattr(view, "action", None) or method
        ability = abilities.get(action)
        if ability is None:
            ability = READ if request.method in permissions.SAFE_METHODS else None
        if ability is None:
            raise NotPermitted("this action is not available")
        ability.require(user)
        return True
