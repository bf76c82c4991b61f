from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.models import Environment, Flag, FlagState, Project
from flags.serializers import (
    EnvironmentSerializer,
    FlagSerializer,
    FlagStateChangeSerializer,
    FlagStateSerializer,
    ProjectSerializer,
)
from flagship import permissions
from flagship.lookups import get_or_404

CRUD_MANAGED = {
    "create": permissions.MANAGE,
    "update": permissions.MANAGE,
    "partial_update": permissions.MANAGE,
    "destroy": permissions.MANAGE,
}


class ProjectScopedMixin:
    """Resolves `project_id` from the URL within the caller's organization (else 404)."""

    def get_project(self) -> Project:
        if not hasattr(self, "_project"):
            self._project = get_or_404(
                Project.objects.visible_to(self.request.user),
                "project",
                pk=self.kwargs["project_id"],
            )
        return self._project

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if "project_id" in self.kwargs:
            context["project"] = self.get_project()
        return context


class AuditedCrudMixin:
    """Create, update and delete through the model's audited methods."""

    lookup_what = "object"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_object(self):
        return get_or_404(self.get_queryset(), self.lookup_what, pk=self.kwargs["pk"])

    def create_fields(self) -> dict:
        return {}

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        instance = self.get_queryset().model.create_audited(
            by=request.user, **self.create_fields(), **serializer.validated_data
        )
        return Response(self.get_serializer(instance).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        self.update_instance(instance, serializer.validated_data)
        return Response(self.get_serializer(instance).data)

    def update_instance(self, instance, changes: dict) -> None:
        instance.update_audited(by=self.request.user, changes=changes)

    def destroy(self, request, *args, **kwargs):
        self.get_object().delete_audited(by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectViewSet(AuditedCrudMixin, viewsets.ModelViewSet):
    serializer_class = ProjectSerializer
    abilities = CRUD_MANAGED
    lookup_url_kwarg = "pk"
    lookup_value_regex = "[^/]+"
    lookup_what = "project"

    def get_queryset(self):
        return Project.objects.visible_to(self.request.user).order_by("-created_at", "-id")

    def create_fields(self):
        return {"org_id": self.request.user.org_id}


class EnvironmentViewSet(ProjectScopedMixin, AuditedCrudMixin, viewsets.ModelViewSet):
    serializer_class = EnvironmentSerializer
    # Names the model for the OpenAPI schema; get_queryset() scopes rows to the caller.
    queryset = Environment.objects.none()
    abilities = CRUD_MANAGED
    lookup_value_regex = "[^/]+"
    lookup_what = "environment"

    def get_queryset(self):
        return Environment.objects.filter(project=self.get_project()).order_by("-created_at", "-id")

    def create_fields(self):
        return {"project": self.get_project()}


class FlagViewSet(ProjectScopedMixin, AuditedCrudMixin, viewsets.ModelViewSet):
    serializer_class = FlagSerializer
    # Names the model for the OpenAPI schema; get_queryset() scopes rows to the caller.
    queryset = Flag.objects.none()
    abilities = {
        "create": permissions.EDIT_FLAGS,
        "partial_update": permissions.EDIT_FLAGS,
        # Deleting a flag removes it from every environment, protected ones included.
        "destroy": permissions.DELETE_FLAGS,
    }
    lookup_url_kwarg = "flag_key"
    lookup_value_regex = "[^/]+"
    lookup_what = "flag"

    def get_queryset(self):
        return Flag.objects.filter(project=self.get_project()).order_by("-created_at", "-id")

    def get_object(self):
        return get_or_404(self.get_queryset(), "flag", key=self.kwargs["flag_key"])

    def create_fields(self):
        return {"project": self.get_project()}

    def update_instance(self, instance, changes):
        instance.update_details(by=self.request.user, changes=changes)


class FlagStateView(ProjectScopedMixin, APIView):
    """GET the flag's state in one environment; PUT merges the given fields into it."""

    abilities = {"put": permissions.EDIT_FLAGS}

    def get_state(self) -> FlagState:
        project = self.get_project()
        flag = get_or_404(Flag.objects.filter(project=project), "flag", key=self.kwargs["flag_key"])
        environment = get_or_404(
            Environment.objects.filter(project=project).select_related("project"),
            "environment",
            pk=self.kwargs["env_id"],
        )
        state, _ = FlagState.objects.get_or_create(flag=flag, environment=environment)
        state.flag, state.environment = flag, environment
        return state

    @extend_schema(responses={200: FlagStateSerializer})
    def get(self, request, project_id, flag_key, env_id):
        return Response(FlagStateSerializer(self.get_state()).data)

    @extend_schema(request=FlagStateChangeSerializer, responses={200: FlagStateSerializer})
    def put(self, request, project_id, flag_key, env_id):
        state = self.get_state()
        body = FlagStateChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        expected_version = changes.pop("version", None)
        state.change_directly(by=request.user, changes=changes, expected_version=expected_version)
        return Response(FlagStateSerializer(state).data)
