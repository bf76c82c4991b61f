"""Why the review page does not offer an action, in one line. The decisions themselves are
`flagship.permissions` functions; the model methods enforce them again when an action is taken."""

from approvals.models import Status
from flagship import permissions

SELF_REVIEW = "You requested this change."
ALREADY_REVIEWED = "You have already reviewed this request."


def review_refusal(user, approval) -> str | None:
    """None when the user may approve or reject the request now."""
    if approval.status == Status.APPROVED:
        return "Approved; it will be applied at its scheduled time."
    if approval.status != Status.PENDING:
        return f"Only pending requests are reviewed; this one is {approval.status}."
    if not permissions.can_review(user, approval):
        if approval.requestor_id == user.pk:
            return SELF_REVIEW
        return permissions.REVIEW.refusal(user)
    if any(
        review.reviewer_id == user.pk and review.is_current for review in approval.reviews.all()
    ):
        return ALREADY_REVIEWED
    return None


def cancel_refusal(user, approval) -> str | None:
    """None when the user may cancel the request now."""
    if not approval.is_open:
        return f"Only open requests can be cancelled; this one is {approval.status}."
    if not permissions.can_cancel(user, approval):
        return permissions.CANCEL.refusal(user) or permissions.CANCEL_OWN_ONLY
    return None
