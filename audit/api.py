from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action

from audit.filters import AuditEntryFilter
from audit.models import AuditEntry, Webhook
from audit.serializers import AuditEntrySerializer, WebhookDeliverySerializer, WebhookSerializer
from flags.api import AuditedCrudMixin
from flagship import permissions


class AuditEntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter

    def get_queryset(self):
        return AuditEntry.objects.visible_to(self.request.user).for_api_list()


class WebhookViewSet(AuditedCrudMixin, viewsets.ModelViewSet):
    """Outbound webhooks of the caller's organization; owners and admins only, since a webhook
    sends the organization's audit events to another system."""

    serializer_class = WebhookSerializer
    abilities = {
        name: permissions.MANAGE
        for name in (
            "list",
            "retrieve",
            "create",
            "partial_update",
            "destroy",
            "deliveries",
        )
    }
    lookup_value_regex = "[^/]+"
    lookup_what = "webhook"

    def get_queryset(self):
        return Webhook.objects.visible_to(self.request.user).for_api_list()

    def create_fields(self):
        return {"org_id": self.request.user.org_id}

    def update_instance(self, instance, changes):
        if "secret" in changes and changes["secret"] != instance.secret:
            changes["secret_updated_at"] = timezone.now()
        instance.update_audited(by=self.request.user, changes=changes)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The webhook's deliveries, newest first, with status code, error and attempts."""
        deliveries = self.get_object().deliveries.newest_first()
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
