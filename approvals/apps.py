from django.apps import AppConfig
from django.db.models import F
from django.db.models.signals import post_delete


def uncount_deleted_request(sender, instance, **kwargs):
    """Deleting a flag, environment or project cascades to its approval requests without going
    through a transition; their statuses leave the org's totals here, in the deleting
    transaction. Totals are summed over their stripes, so any one stripe row may take the -1.
    An update rather than an upsert: when the organization itself is being deleted, its totals
    are already gone."""
    from approvals.models import StatusTotal

    one_row = StatusTotal.objects.filter(org_id=instance.org_id, status=instance.status)
    StatusTotal.objects.filter(pk__in=one_row.order_by("stripe").values("pk")[:1]).update(
        count=F("count") - 1
    )


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_delete.connect(
            uncount_deleted_request,
            sender="approvals.ApprovalRequest",
            dispatch_uid="approvals.uncount_deleted_request",
        )
