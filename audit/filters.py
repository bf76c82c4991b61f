import django_filters

from audit.models import AuditEntry


class AuditEntryFilter(django_filters.FilterSet):
    action = django_filters.CharFilter()
    resource_type = django_filters.CharFilter()
    resource_id = django_filters.CharFilter()
    actor_id = django_filters.UUIDFilter(field_name="actor_id")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "resource_type", "resource_id", "actor_id", "since", "until"]
