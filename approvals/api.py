from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from approvals.filters import ApprovalRequestFilter
from approvals.models import (
    ApprovalRequest,
    ApprovalRow,
    ReviewAction,
    StatusTotal,
    approval_id_or_404,
)
from approvals.serializers import (
    ApprovalCreateSerializer,
    ApprovalRequestSerializer,
    CancelInputSerializer,
    ReviewInputSerializer,
)
from flags.models import Environment, Flag, Project
from flagship import permissions
from flagship.lookups import get_or_404


class ApprovalListMixin(mixins.ListModelMixin):
    """A newest-first list of approval requests, its pages read by `api_page`."""

    serializer_class = ApprovalRequestSerializer
    filterset_class = ApprovalRequestFilter

    def page_rows(self, queryset, after, start, stop):
        return queryset.api_page(after, start, stop)


class ApprovalRequestViewSet(
    ApprovalListMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    lookup_value_regex = "[^/]+"
    abilities = {
        "create": permissions.PROPOSE,
        "review": permissions.REVIEW,
        "cancel": permissions.CANCEL,
    }

    def get_queryset(self):
        return ApprovalRequest.objects.visible_to(self.request.user).newest_first()

    def get_object(self):
        return ApprovalRequest.objects.api_row(self.request.user.org_id, self.kwargs["pk"])

    def count_total(self, queryset):
        """From the per-status totals when only `status` narrows the list (the common case,
        and the one that would count up to every row of the org); otherwise a COUNT."""
        params = self.request.query_params
        if any(params.get(name) for name in ApprovalRequestFilter.base_filters if name != "status"):
            return queryset.count()
        return StatusTotal.objects.total(self.request.user.org_id, params.get("status"))

    def changed_response(self, approval, status_code=status.HTTP_200_OK):
        """The request as the change left it, from what the change read and wrote: the same
        object a read right after it gives, without the round trip to read it."""
        row = ApprovalRow.after_change(approval)
        return Response(ApprovalRequestSerializer(row).data, status=status_code)

    @extend_schema(request=ApprovalCreateSerializer, responses={201: ApprovalRequestSerializer})
    def create(self, request):
        body = ApprovalCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        flag = get_or_404(
            Flag.objects.visible_to(request.user).select_related("project"),
            "flag",
            pk=data["flag_id"],
        )
        environment = get_or_404(
            Environment.objects.visible_to(request.user).select_related("project"),
            "environment",
            pk=data["env_id"],
        )
        approval = ApprovalRequest.propose(
            flag=flag,
            environment=environment,
            requestor=request.user,
            change_type=data["change_type"],
            payload=data.get("payload"),
            description=data["description"],
            execution_date=data.get("execution_date"),
        )
        return self.changed_response(approval, status.HTTP_201_CREATED)

    def transition_input(
        self, serializer_class, *, body_optional: bool = False
    ) -> tuple[ApprovalRequest, dict]:
        """The request a transition acts on, and the transition's validated body.

        The transition reads the request again under lock and answers 404 for an unknown id
        or another organization's request, so a valid body goes straight to it, with an
        instance that holds only the id. A body that cannot be read or is invalid still gets
        404 before its 400 or 415 (the SPEC's order): the request is read first."""
        try:
            data = self.request.data
        except APIException:
            self.get_object()
            raise
        body = serializer_class(data=(data or {}) if body_optional else data)
        if not body.is_valid():
            self.get_object()
            raise ValidationError(body.errors)
        return ApprovalRequest.by_id(approval_id_or_404(self.kwargs["pk"])), body.validated_data

    @extend_schema(request=ReviewInputSerializer, responses={200: ApprovalRequestSerializer})
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        approval, data = self.transition_input(ReviewInputSerializer)
        if data["action"] == ReviewAction.APPROVE:
            approval.approve(
                by=request.user, note=data["note"], ignore_conflicts=data["ignore_conflicts"]
            )
        else:
            approval.reject(by=request.user, note=data["note"])
        return self.changed_response(approval)

    @extend_schema(request=CancelInputSerializer, responses={200: ApprovalRequestSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        approval, data = self.transition_input(CancelInputSerializer, body_optional=True)
        approval.cancel(by=request.user, note=data["note"])
        return self.changed_response(approval)


class FlagApprovalRequestList(ApprovalListMixin, viewsets.GenericViewSet):
    """The approval requests of one flag in one environment, newest first."""

    # Names the model for the OpenAPI schema; get_queryset() scopes rows to the caller.
    queryset = ApprovalRequest.objects.none()

    def get_queryset(self):
        user = self.request.user
        project = get_or_404(
            Project.objects.visible_to(user), "project", pk=self.kwargs["project_id"]
        )
        flag = get_or_404(Flag.objects.filter(project=project), "flag", key=self.kwargs["flag_key"])
        environment = get_or_404(
            Environment.objects.filter(project=project), "environment", pk=self.kwargs["env_id"]
        )
        return (
            ApprovalRequest.objects.visible_to(user)
            .filter(flag=flag, environment=environment)
            .newest_first()
        )
