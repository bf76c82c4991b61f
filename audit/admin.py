import json

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditEntry
from flagship.admin import OrgScopedAdmin


def pretty_json(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(AuditEntry)
class AuditEntryAdmin(OrgScopedAdmin):
    """Append-only: readable here, never added, changed or deleted."""

    list_display = ["created_at", "action", "actor", "actor_type", "resource_type", "resource_id"]
    list_filter = ["action", "actor_type", "resource_type"]
    search_fields = ["action", "resource_id", "actor__email"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "org",
        "actor",
        "actor_type",
        "action",
        "resource_type",
        "resource_id",
        "before",
        "after",
        "details",
    ]
    readonly_fields = fields

    @admin.display(description="before state")
    def before(self, entry):
        return pretty_json(entry.before_state)

    @admin.display(description="after state")
    def after(self, entry):
        return pretty_json(entry.after_state)

    @admin.display(description="metadata")
    def details(self, entry):
        return pretty_json(entry.metadata)
