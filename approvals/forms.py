from django import forms

from approvals.models import Status
from flags.models import Environment, Flag, Project


class QueueFilterForm(forms.Form):
    """The review queue's filters. Choices are limited to the user's organization; an invalid
    value (say, another org's id) is dropped rather than failing the page."""

    status = forms.ChoiceField(choices=[("", "Any status"), *Status.choices], required=False)
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(), required=False, empty_label="All projects"
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.none(), required=False, empty_label="All environments"
    )
    flag = forms.ModelChoiceField(
        queryset=Flag.objects.none(), required=False, empty_label="All flags"
    )
    mine = forms.BooleanField(required=False, label="Only my requests")

    def __init__(self, data, *, user):
        super().__init__(data)
        self.user = user
        self.fields["project"].queryset = Project.objects.visible_to(user).order_by("name")
        self.fields["environment"].queryset = (
            Environment.objects.visible_to(user)
            .select_related("project")
            .order_by("project__name", "created_at")
        )
        self.fields["flag"].queryset = Flag.objects.visible_to(user).order_by("key")
        self.is_valid()

    def apply(self, queryset):
        """Narrows `queryset` by every valid filter but the status (the per-status counts are
        taken over the other filters)."""
        data = self.cleaned_data
        if data.get("project"):
            queryset = queryset.filter(project=data["project"])
        if data.get("environment"):
            queryset = queryset.filter(environment=data["environment"])
        if data.get("flag"):
            queryset = queryset.filter(flag=data["flag"])
        if data.get("mine"):
            queryset = queryset.filter(requestor=self.user)
        return queryset

    def apply_status(self, queryset):
        status = self.cleaned_data.get("status")
        return queryset.filter(status=status) if status else queryset


class ReviewForm(forms.Form):
    note = forms.CharField(max_length=5000, required=False, widget=forms.Textarea)
    ignore_conflicts = forms.BooleanField(required=False)


class CancelForm(forms.Form):
    note = forms.CharField(max_length=5000, required=False, widget=forms.Textarea)
