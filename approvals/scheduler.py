"""Applies approved requests when their execution date arrives (SPEC §7)."""

import logging

from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest

logger = logging.getLogger("flagship.scheduler")


def apply_next_due(now=None) -> ApprovalRequest | None:
    """Applies (or, on a conflict, reopens) one due request in its own transaction; None when
    nothing is due. Rows another worker holds are skipped, so any number of workers can run."""
    now = now or timezone.now()
    # A plain read first: an idle worker then never opens a write transaction (on SQLite
    # that would take the database's write lock every poll).
    if not ApprovalRequest.objects.due(now).exists():
        return None
    with transaction.atomic():
        request = (
            ApprovalRequest.objects.due(now)
            .select_for_update(skip_locked=True)
            .order_by("execution_date", "created_at")
            .first()
        )
        if request is None:
            return None
        applied = request.apply_when_due(now=now)
    if applied:
        logger.info(
            "applied scheduled approval request %s (%s %s in %s, due %s)",
            request.pk,
            request.change_type,
            request.flag.key,
            request.environment.slug,
            request.execution_date.isoformat(),
        )
    else:
        logger.info(
            "scheduled approval request %s conflicts with the current flag state; "
            "moved back to pending",
            request.pk,
        )
    return request
