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

    def get_form_class(self):
        """The form validating the query string, built once: django-filter builds a new form
        class (a metaclass run over fresh copies of every field) for each request, a
        noticeable share of a list page. These filters are the same for every request."""
        form_class = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = type(self)._form_class = super().get_form_class()
        return form_class
