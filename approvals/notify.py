"""Email notifications about approval requests.

The transitions call `request_created` and friends inside their transaction; each queues a
QueuedEmail row there, so an email exists exactly when its change committed and nothing is
queued for a change that rolls back. The worker (`run_worker`) renders and sends them with
`send_next_due`, retrying with back-off while the mail server fails, so a slow or failing mail
server never holds locks, fails a change or slows the request that made it.
"""

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from flagship import outbox, sql
from flagship.models import Role, User

logger = logging.getLogger("flagship.notify")

# Who hears about each event: the org's reviewers for a request that waits for their review
# (new, or reopened by a scheduled apply that conflicted), else the requestor.
TO_REVIEWERS = frozenset({"created", "reopened"})


def request_created(request) -> None:
    """Tells the org's reviewers (owners and admins, not the requestor) a request waits."""
    _queue(request, "created")


def request_approved(request) -> None:
    _queue(request, "approved")


def request_rejected(request) -> None:
    _queue(request, "rejected")


def request_applied(request) -> None:
    _queue(request, "applied")


def scheduled_apply_failed(request, conflicts: list[dict]) -> None:
    """Tells the requestor the change was not applied, and the org's reviewers that the request
    waits for their review again: the approvals they gave were withdrawn."""
    _queue(request, "schedule_failed", "reopened", conflicts=conflicts)


def _queue(request, *events: str, conflicts: list[dict] = ()) -> None:
    """One queued email of each event about the request, in one INSERT."""
    from approvals.models import QueuedEmail

    sql.insert(
        [
            QueuedEmail(approval_request_id=request.pk, event=event, conflicts=conflicts)
            for event in events
        ]
    )


# ----- sending, in the worker ------------------------------------------------------------------


def claim_lease() -> timedelta:
    """How long a claimed email is left alone before another worker may retry it: longer than
    one SMTP attempt can take."""
    return timedelta(seconds=3 * settings.EMAIL_TIMEOUT_SECONDS)


def send_next_due():
    """Renders and sends one due email and records the outcome; None when nothing is due."""
    from approvals.models import EmailStatus, QueuedEmail

    queued = outbox.claim_next_due(QueuedEmail.objects.due(), claim_lease())
    if queued is None:
        return None
    try:
        recipients = send(queued)
    except Exception as exc:
        logger.warning(
            "could not send the %s email for approval request %s (attempt %s/%s)",
            queued.event,
            queued.approval_request_id,
            queued.attempts,
            settings.EMAIL_MAX_ATTEMPTS,
            exc_info=True,
        )
        queued.settle(
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            **queued.after_failure(
                max_attempts=settings.EMAIL_MAX_ATTEMPTS,
                retry_base_seconds=settings.EMAIL_RETRY_BASE_SECONDS,
            ),
        )
        return queued
    queued.settle(
        status=EmailStatus.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
    )
    logger.info(
        "sent the %s email for approval request %s to %s",
        queued.event,
        queued.approval_request_id,
        ", ".join(recipients) or "nobody (no active recipient)",
    )
    return queued


def send(queued) -> list[str]:
    """Sends the email as the request stands now; returns its recipients (none: not sent)."""
    from approvals.models import ApprovalRequest

    request = ApprovalRequest.objects.select_related(
        "flag", "environment", "project", "requestor", "reviewer"
    ).get(pk=queued.approval_request_id)
    event = queued.event
    recipients = _reviewer_emails(request) if event in TO_REVIEWERS else _requestor_email(request)
    if not recipients:
        return []
    context = {
        "request": request,
        "payload": as_json(request.payload),
        "conflicts": [
            {key: as_json(value) if key != "field" else value for key, value in item.items()}
            for item in queued.conflicts
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
    return recipients


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
