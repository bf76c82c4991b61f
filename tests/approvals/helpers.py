from datetime import timedelta

from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType
from flags.models import FlagState


def propose(workspace, requestor, *, environment=None, change_type=ChangeType.ENABLE, **fields):
    return ApprovalRequest.propose(
        flag=fields.pop("flag", workspace.flag),
        environment=environment or workspace.production,
        requestor=requestor,
        change_type=change_type,
        **fields,
    )


def create_body(workspace, environment=None, **overrides) -> dict:
    body = {
        "flag_id": str(workspace.flag.pk),
        "env_id": str((environment or workspace.production).pk),
        "change_type": "enable_with_rollout",
        "payload": {"enabled": True, "percentage_rollout": 5000},
        "description": "Roll out to half of the traffic",
    }
    body.update(overrides)
    return body


def propose_many(workspace, requestor, count: int, environment=None) -> list[ApprovalRequest]:
    """`count` pending enable requests through the real transition, newest last."""
    return [
        ApprovalRequest.propose(
            flag=workspace.flag,
            environment=environment or workspace.production,
            requestor=requestor,
            change_type=ChangeType.ENABLE,
            description=f"request {number}",
        )
        for number in range(count)
    ]


def send_queued_emails() -> int:
    """Does what the worker does with the email outbox: sends every due email. Returns how many
    were taken from the queue."""
    from approvals.notify import send_next_due

    taken = 0
    while send_next_due() is not None:
        taken += 1
    return taken


def send_and_forget_queued_emails(mailoutbox) -> None:
    """Sends what is queued so far and empties the outbox, so a test sees only what follows."""
    send_queued_emails()
    mailoutbox.clear()


def production_state(workspace) -> FlagState:
    return FlagState.objects.get(flag=workspace.flag, environment=workspace.production)


def review(api, user, request, **body):
    """`user` reviews the request through the API; `body` is the review's JSON."""
    return api(user).post(f"/v1/approvals/{request.pk}/review", body, format="json")


def cancel(api, user, request):
    """`user` cancels the request through the API, with an empty body."""
    return api(user).post(f"/v1/approvals/{request.pk}/cancel", {}, format="json")


def make_due(request) -> None:
    """Moves a scheduled request's execution date just into the past."""
    ApprovalRequest.objects.filter(pk=request.pk).update(
        execution_date=timezone.now() - timedelta(seconds=1)
    )


def require_two_approvals(workspace) -> None:
    workspace.production.min_approvals = 2
    workspace.production.save()


def move_the_rollout(workspace, percentage: int) -> None:
    """Changes the production flag state under pending requests, bypassing protection, as an
    earlier applied request would."""
    FlagState.objects.filter(flag=workspace.flag, environment=workspace.production).update(
        percentage_rollout=percentage
    )
