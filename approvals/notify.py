"""Email notifications about approval requests.

The transitions call these inside their transaction; each only registers an on-commit callback,
so nothing is sent for a change that rolls back and a slow or failing mail server never holds
locks or fails the change (failures are logged).
"""

import json
import logging
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string

from flagship.models import Role, User

logger = logging.getLogger("flagship.notify")


def request_created(request) -> None:
    """Tells the org's reviewers (owners and admins, not the requestor) a request waits."""
    _after_commit("created", request.pk, to_reviewers=True)


def request_approved(request) -> None:
    _after_commit("approved", request.pk)


def request_rejected(request) -> None:
    _after_commit("rejected", request.pk)


def request_applied(request) -> None:
    _after_commit("applied", request.pk)


def scheduled_apply_failed(request, conflicts: list[dict]) -> None:
    _after_commit("schedule_failed", request.pk, conflicts=conflicts)


def _after_commit(
    event: str, request_id, *, to_reviewers: bool = False, conflicts: list[dict] = ()
) -> None:
    transaction.on_commit(partial(_send, event, request_id, to_reviewers, list(conflicts)))


def _send(event: str, request_id, to_reviewers: bool, conflicts: list[dict]) -> None:
    from approvals.models import ApprovalRequest

    try:
        request = ApprovalRequest.objects.select_related(
            "flag", "environment", "project", "requestor", "reviewer"
        ).get(pk=request_id)
        recipients = _reviewer_emails(request) if to_reviewers else _requestor_email(request)
        if not recipients:
            return
        context = {
            "request": request,
            "payload": as_json(request.payload),
            "conflicts": [
                {key: as_json(value) if key != "field" else value for key, value in item.items()}
                for item in conflicts
            ],
            "url": f"{settings.SITE_URL}/review/{request.pk}/",
        }
        subject = render_to_string(f"emails/approval_{event}_subject.txt", context)
        message = EmailMultiAlternatives(
            subject=" ".join(subject.split()),
            body=render_to_string(f"emails/approval_{event}.txt", context),
            to=recipients,
        )
        message.attach_alternative(
            render_to_string(f"emails/approval_{event}.html", context), "text/html"
        )
        message.send()
    except Exception:
        logger.exception("could not send the %s email for approval request %s", event, request_id)
    else:
        logger.info(
            "sent the %s email for approval request %s to %s",
            event,
            request_id,
            ", ".join(recipients),
        )


def as_json(value) -> str:
    """Values as the API shows them (true, null), not as Python prints them."""
    return json.dumps(value, sort_keys=True)


def _reviewer_emails(request) -> list[str]:
    reviewers = User.objects.filter(
        is_active=True,
        membership__org_id=request.org_id,
        membership__role__in=[Role.OWNER, Role.ADMIN],
    ).exclude(pk=request.requestor_id)
    return list(reviewers.order_by("email").values_list("email", flat=True))


def _requestor_email(request) -> list[str]:
    requestor = request.requestor
    if requestor is None or not requestor.is_active:
        return []
    return [requestor.email]
