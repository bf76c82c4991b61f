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
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from flagship.models import Role, User

logger = logging.getLogger("flagship.notify")

# Who hears about each event: the org's reviewers for a new request, else the requestor.
TO_REVIEWERS = frozenset({"created"})


def request_created(request) -> None:
    """Tells the org's reviewers (owners and admins, not the requestor) a request waits."""
    _queue("created", request)


def request_approved(request) -> None:
    _queue("approved", request)


def request_rejected(request) -> None:
    _queue("rejected", request)


def request_applied(request) -> None:
    _queue("applied", request)


def scheduled_apply_failed(request, conflicts: list[dict]) -> None:
    _queue("schedule_failed", request, conflicts=conflicts)


def _queue(event: str, request, *, conflicts: list[dict] = ()) -> None:
    from approvals.models import QueuedEmail

    QueuedEmail.objects.create(approval_request_id=request.pk, event=event, conflicts=conflicts)


# ----- sending, in the worker ------------------------------------------------------------------


def claim_lease() -> timedelta:
    """How long a claimed email is left alone before another worker may retry it: longer than
    one SMTP attempt can take."""
    return timedelta(seconds=3 * settings.EMAIL_TIMEOUT_SECONDS)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=settings.EMAIL_RETRY_BASE_SECONDS * 2 ** (attempts - 1))


def claim_next_due():
    """Takes one due email and moves its next attempt past the lease, in a transaction that
    commits before anything is sent, so two workers never send the same email at once."""
    from approvals.models import QueuedEmail

    now = timezone.now()
    if not QueuedEmail.objects.due(now).exists():  # see approvals.scheduler.apply_next_due
        return None
    with transaction.atomic():
        queued = (
            QueuedEmail.objects.due(now)
            .select_for_update(skip_locked=True)
            .order_by("next_attempt_at", "created_at")
            .first()
        )
        if queued is None:
            return None
        queued.attempts += 1
        queued.next_attempt_at = now + claim_lease()
        queued.save(update_fields=["attempts", "next_attempt_at"])
    return queued


def send_next_due():
    """Renders and sends one due email and records the outcome; None when nothing is due."""
    from approvals.models import EmailStatus, QueuedEmail

    queued = claim_next_due()
    if queued is None:
        return None
    error, recipients = "", []
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
        error = f"{type(exc).__name__}: {exc}"[:2000]
    now = timezone.now()
    if not error:
        changes = {"status": EmailStatus.SENT, "sent_at": now, "next_attempt_at": None}
        logger.info(
            "sent the %s email for approval request %s to %s",
            queued.event,
            queued.approval_request_id,
            ", ".join(recipients) or "nobody (no active recipient)",
        )
    elif queued.attempts >= settings.EMAIL_MAX_ATTEMPTS:
        changes = {"status": EmailStatus.FAILED, "next_attempt_at": None}
    else:
        changes = {"next_attempt_at": now + retry_delay(queued.attempts)}
    # Only while this worker's claim stands (see audit.webhooks.record_outcome).
    QueuedEmail.objects.filter(
        pk=queued.pk, status=EmailStatus.PENDING, attempts=queued.attempts
    ).update(**changes, last_error=error)
    for field, value in {**changes, "last_error": error}.items():
        setattr(queued, field, value)
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
