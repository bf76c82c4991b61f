from django import forms
from django.contrib import admin

from flags.models import Environment, Flag, FlagState, Project
from flagship import permissions
from flagship.admin import OrgScopedAdmin


def changes_from(form) -> dict:
    return {field: form.cleaned_data[field] for field in form.changed_data}


class ProjectForm(forms.ModelForm):
    org_id = None  # the staff user's organization, set by ProjectAdmin.get_form

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        taken = Project.objects.filter(org_id=self.org_id, slug=slug).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("A project with this slug exists.")
        return slug


@admin.register(Project)
class ProjectAdmin(OrgScopedAdmin):
    list_display = ["name", "slug", "org", "created_at"]
    search_fields = ["name", "slug"]
    list_select_related = ["org"]
    fields = ["name", "slug"]
    form = ProjectForm
    add_ability = permissions.MANAGE
    change_ability = permissions.MANAGE

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.org_id = request.user.org_id
        return form

    def create(self, request, obj, form):
        return Project.create_audited(
            by=request.user, org_id=request.user.org_id, **form.cleaned_data
        )

    def update(self, request, obj, form):
        obj.update_audited(by=request.user, changes=changes_from(form))


@admin.register(Environment)
class EnvironmentAdmin(OrgScopedAdmin):
    list_display = ["name", "project", "slug", "requires_approval", "min_approvals", "color"]
    list_filter = ["requires_approval", ("project", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "slug", "project__name"]
    list_select_related = ["project"]
    autocomplete_fields = ["project"]
    fields = ["project", "name", "slug", "color", "requires_approval", "min_approvals"]
    add_ability = permissions.MANAGE
    change_ability = permissions.MANAGE

    def get_readonly_fields(self, request, obj=None):
        return ["project"] if obj is not None else []

    def create(self, request, obj, form):
        # Also creates the environment's state for every flag of the project.
        return Environment.create_audited(by=request.user, **form.cleaned_data)

    def update(self, request, obj, form):
        # Recorded as environment.protection_changed when requires_approval or min_approvals moves.
        obj.update_audited(by=request.user, changes=changes_from(form))


class FlagStateInline(admin.TabularInline):
    """The flag's state in each environment, read here; edited on the flag state's own page."""

    model = FlagState
    fields = ["environment", "enabled", "percentage_rollout", "default_value", "version"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # the flag it belongs to is already scoped to the user's organization


@admin.register(Flag)
class FlagAdmin(OrgScopedAdmin):
    list_display = ["key", "name", "project", "flag_type", "updated_at"]
    list_filter = ["flag_type", ("project", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["key", "name", "description"]
    list_select_related = ["project"]
    autocomplete_fields = ["project"]
    fields = ["project", "key", "name", "description", "flag_type", "default_value", "tags"]
    inlines = [FlagStateInline]
    add_ability = permissions.EDIT_FLAGS
    change_ability = permissions.EDIT_FLAGS

    def get_readonly_fields(self, request, obj=None):
        return ["project", "key", "flag_type"] if obj is not None else []

    def create(self, request, obj, form):
        # Also creates the flag's state (disabled, rollout 0) in every environment.
        return Flag.create_audited(by=request.user, **form.cleaned_data)

    def update(self, request, obj, form):
        obj.update_details(by=request.user, changes=changes_from(form))


@admin.register(FlagState)
class FlagStateAdmin(OrgScopedAdmin):
    """Read-only in protected environments (only an applied approval request changes those);
    elsewhere edits go through `FlagState.change_directly`, so they are validated and audited."""

    list_display = [
        "flag",
        "environment",
        "enabled",
        "percentage_rollout",
        "protected",
        "version",
        "updated_at",
    ]
    list_filter = [
        "environment__requires_approval",
        "enabled",
        ("environment__project", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["flag__key", "environment__name"]
    list_select_related = ["flag", "environment__project"]
    fields = [
        "flag",
        "environment",
        "enabled",
        "default_value",
        "percentage_rollout",
        "rules",
        "variants",
        "version",
        "updated_at",
    ]
    change_ability = permissions.EDIT_FLAGS

    @admin.display(boolean=True, ordering="environment__requires_approval")
    def protected(self, state):
        return state.environment.requires_approval

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.environment.requires_approval:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["flag", "environment", "version", "updated_at"]

    def update(self, request, obj, form):
        changes = changes_from(form)
        if changes:
            obj.change_directly(by=request.user, changes=changes)
