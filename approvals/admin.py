from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from approvals.models import ApprovalRequest, QueuedEmail, Review, StatusTotal
from flagship.admin import OrgScopedAdmin
from flagship.errors import DomainError


class ReviewInline(admin.TabularInline):
    model = Review
    fields = ["reviewer", "action", "note", "is_current", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # the request it belongs to is already scoped to the user's organization


def row_label(approval) -> str:
    return f"Request {str(approval.pk)[:8]} ({approval.flag.key} in {approval.environment.slug})"


def run_on_each(modeladmin, request, queryset, verb: str, act) -> None:
    """Runs a transition on each selected request as the staff user and reports every row:
    success, or the domain error's message (the same words the API answers with)."""
    for approval in queryset.select_related("flag", "environment"):
        # Superusers see every organization here, but the transitions act only on the user's
        # own organization's requests (another's answer "not found") and refuse users without
        # a membership, as they do for the API.
        try:
            act(approval)
        except DomainError as error:
            message, level = f"{row_label(approval)}: {error.message}", messages.ERROR
        else:
            message, level = (
                f"{row_label(approval)}: {verb}, now {approval.status}.",
                messages.SUCCESS,
            )
        modeladmin.message_user(request, message, level)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(OrgScopedAdmin):
    """Requests are created with `ApprovalRequest.propose` (API) and change status only through
    the Approve / Reject / Cancel actions, which call the model's transition methods."""

    list_display = [
        "flag",
        "environment",
        "change_type",
        "status",
        "approvals",
        "requestor",
        "created_at",
        "execution_date",
    ]
    list_filter = [
        "status",
        "change_type",
        "environment__requires_approval",
        ("project", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["flag__key", "description", "requestor__email"]
    list_select_related = ["flag", "environment", "requestor"]
    date_hierarchy = "created_at"
    inlines = [ReviewInline]
    actions = ["approve_selected", "reject_selected", "cancel_selected"]
    fields = [
        "review_page",
        "status",
        "flag",
        "environment",
        "project",
        "requestor",
        "change_type",
        "payload",
        "description",
        "execution_date",
        "required_approvals",
        "approvals_count",
        "base_state",
        "base_version",
        "reviewer",
        "review_note",
        "reviewed_at",
        "applied_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="approvals")
    def approvals(self, approval):
        return f"{approval.approvals_count} / {approval.required_approvals}"

    @admin.display(description="review page")
    def review_page(self, approval):
        url = reverse("approvals:detail", args=[approval.pk])
        return format_html('<a href="{}">Open the review page</a>', url)

    @admin.action(description="Approve selected requests")
    def approve_selected(self, request, queryset):
        run_on_each(self, request, queryset, "approved", lambda a: a.approve(by=request.user))

    @admin.action(description="Reject selected requests")
    def reject_selected(self, request, queryset):
        run_on_each(self, request, queryset, "rejected", lambda a: a.reject(by=request.user))

    @admin.action(description="Cancel selected requests")
    def cancel_selected(self, request, queryset):
        run_on_each(self, request, queryset, "cancelled", lambda a: a.cancel(by=request.user))


@admin.register(Review)
class ReviewAdmin(OrgScopedAdmin):
    list_display = ["approval_request", "reviewer", "action", "is_current", "created_at"]
    list_filter = ["action", "is_current"]
    search_fields = ["reviewer__email", "note", "approval_request__flag__key"]
    list_select_related = [
        "reviewer",
        "approval_request__flag",
        "approval_request__environment",
    ]
    readonly_fields = ["approval_request", "reviewer", "action", "note", "is_current", "created_at"]
    fields = readonly_fields

    org_id_lookup = "approval_request__org_id"


@admin.register(StatusTotal)
class StatusTotalAdmin(OrgScopedAdmin):
    """The maintained per-status counters behind list totals; read-only (the transitions keep
    them; `StatusTotal.objects.recount(org_id)` rebuilds them)."""

    list_display = ["org", "status", "stripe", "count"]
    list_filter = ["status"]
    readonly_fields = ["org", "status", "stripe", "count"]
    fields = readonly_fields

    org_id_lookup = "org_id"


@admin.register(QueuedEmail)
class QueuedEmailAdmin(OrgScopedAdmin):
    """The email outbox, read-only: what was sent, what waits for a retry and why."""

    list_display = ["created_at", "event", "approval_request", "status", "attempts", "sent_at"]
    list_filter = ["status", "event"]
    search_fields = ["last_error"]
    list_select_related = ["approval_request__flag", "approval_request__environment"]
    fields = [
        "approval_request",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_at",
        "created_at",
    ]
    readonly_fields = fields

    org_id_lookup = "approval_request__org_id"
