import django_filters

from approvals.models import ApprovalRequest, Status


class ApprovalRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=Status.choices,
        error_messages={"invalid_choice": f"Must be one of: {', '.join(Status.values)}."},
    )
    flag_id = django_filters.UUIDFilter(field_name="flag_id")
    env_id = django_filters.UUIDFilter(field_name="environment_id")
    requestor_id = django_filters.UUIDFilter(field_name="requestor_id")
    project_id = django_filters.UUIDFilter(field_name="project_id")

    class Meta:
        model = ApprovalRequest
        fields = ["status", "flag_id", "env_id", "requestor_id", "project_id"]
