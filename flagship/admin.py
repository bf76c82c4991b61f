"""The Django admin for staff: each staff user sees their own organization and acts under their
role, through the same audited model methods as the API (no direct writes to domain rows)."""

from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from flagship import permissions
from flagship.errors import DomainError
from flagship.models import Membership, MembershipActions, Organization, User

admin.site.site_header = "Flagship administration"
admin.site.site_title = "Flagship admin"
admin.site.index_title = "Organization data"


class OrgScopedAdmin(admin.ModelAdmin):
    """Rows of the staff user's organization only (superusers see every organization), and
    permissions from the role rather than Django's per-model permissions.

    Subclasses name the ability adding and changing need (None: not offered here) and write
    through the model's audited methods in `create` and `update`. A domain error from those is
    shown as a message and nothing is saved. Deleting is left to the API, which audits it.
    """

    add_ability: permissions.Ability | None = None
    change_ability: permissions.Ability | None = None
    # The path from the row to its organization's id, for models whose queryset has no
    # `visible_to` (e.g. "webhook__org_id").
    org_id_lookup: str | None = None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        if self.org_id_lookup:
            return queryset.filter(**{self.org_id_lookup: request.user.org_id})
        return queryset.visible_to(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if hasattr(related.objects, "visible_to") and not request.user.is_superuser:
            kwargs["queryset"] = related.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or permissions.READ.allows(request.user)

    def has_add_permission(self, request):
        return self.add_ability is not None and self.add_ability.allows(request.user)

    def has_change_permission(self, request, obj=None):
        return self.change_ability is not None and self.change_ability.allows(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    # ----- writes through the model ----------------------------------------------------------

    def create(self, request, obj, form):
        raise NotImplementedError

    def update(self, request, obj, form):
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        try:
            if change:
                self.update(request, obj, form)
            else:
                created = self.create(request, obj, form)
                # The admin goes on with the object it built (log entry, redirect to it).
                obj.__dict__.update(created.__dict__)
        except DomainError as error:
            request.admin_refusal = error.message
            self.message_user(request, error.message, messages.ERROR)

    def log_addition(self, request, obj, message):
        if not getattr(request, "admin_refusal", None):
            super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if not getattr(request, "admin_refusal", None):
            super().log_change(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "admin_refusal", None):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "admin_refusal", None):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]

    org_id_lookup = "pk"


@admin.register(User)
class UserAdmin(OrgScopedAdmin):
    """People are added and removed through the members API; here staff look them up."""

    list_display = ["email", "name", "role", "is_staff", "is_active", "date_joined"]
    list_filter = ["membership__role", "is_staff", "is_active"]
    search_fields = ["email", "name"]
    fields = ["email", "name", "is_staff", "is_active", "date_joined", "last_login"]
    readonly_fields = fields

    org_id_lookup = "membership__org_id"
    list_select_related = ["membership"]

    @admin.display(ordering="membership__role")
    def role(self, user):
        return user.role or "-"


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    """Role changes go through MembershipActions (audited, keeps at least one owner)."""

    list_display = ["user", "role", "org", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__name"]
    list_select_related = ["user", "org"]
    fields = ["user", "org", "role", "created_at"]
    readonly_fields = ["user", "org", "created_at"]
    change_ability = permissions.MANAGE

    org_id_lookup = "org_id"

    def update(self, request, obj, form):
        if "role" in form.changed_data:
            MembershipActions.update(by=request.user, membership=obj, role=obj.role)
