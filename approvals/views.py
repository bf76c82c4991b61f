"""The review pages: thin views that read through QuerySet methods and act through the
ApprovalRequest transition methods, showing the domain's messages on the page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from approvals.forms import CancelForm, QueueFilterForm, ReviewForm
from approvals.models import ApprovalRequest, Status
from approvals.permissions import cancel_refusal, review_refusal
from audit.models import AuditEntry
from flagship.errors import DomainError

QUEUE_PAGE_SIZE = 25


@login_required
def queue(request):
    filters = QueueFilterForm(request.GET, user=request.user)
    requests = filters.apply(ApprovalRequest.objects.visible_to(request.user))
    listed = filters.apply_status(requests).for_review_queue()
    page = Paginator(listed, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = requests.status_counts()
    return render(
        request,
        "approvals/queue.html",
        {
            "filters": filters,
            "page": page,
            "status_counts": [(status, label, counts[status]) for status, label in Status.choices],
            "total_count": sum(counts.values()),
        },
    )


@login_required
def detail(request, pk):
    approval = get_object_or_404(
        ApprovalRequest.objects.visible_to(request.user).for_review_page(), pk=pk
    )
    timeline = list(
        AuditEntry.objects.visible_to(request.user)
        .filter(metadata__approval_id=str(approval.pk))
        .select_related("actor")
        .order_by("created_at", "id")
    )
    applied = next((e for e in timeline if e.action == "flag.approved_change_applied"), None)
    # Once applied, "before" is the state the change replaced, not today's state.
    before = applied.before_state if applied else None
    return render(
        request,
        "approvals/detail.html",
        {
            "approval": approval,
            "changes": approval.field_changes(before),
            "conflicts": approval.conflicts,
            "timeline": timeline,
            "review_refusal": review_refusal(request.user, approval),
            "cancel_refusal": cancel_refusal(request.user, approval),
        },
    )


def _transition(request, pk, form_class, act):
    """Runs one transition from a posted form and reports the outcome as a page message."""
    page = reverse("approvals:detail", args=[pk])
    if not request.user.is_authenticated:
        return redirect_to_login(page)
    approval = get_object_or_404(ApprovalRequest.objects.visible_to(request.user), pk=pk)
    form = form_class(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, errors[0])
        return redirect(page)
    try:
        success = act(approval, request.user, form.cleaned_data)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect(page)


def _approve(approval, user, data) -> str:
    approval.approve(by=user, note=data["note"], ignore_conflicts=data["ignore_conflicts"])
    if approval.status == Status.APPLIED:
        return f"Approved and applied to {approval.flag.key} in {approval.environment.name}."
    if approval.status == Status.APPROVED:
        return f"Approved; it will be applied at {approval.execution_date:%Y-%m-%d %H:%M} UTC."
    return (
        f"Approved: {approval.approvals_count} of {approval.required_approvals} approvals so far."
    )


def _reject(approval, user, data) -> str:
    approval.reject(by=user, note=data["note"])
    return "Rejected. The flag state was not changed."


def _cancel(approval, user, data) -> str:
    approval.cancel(by=user, note=data["note"])
    return "Cancelled. The flag state was not changed."


@require_POST
def approve(request, pk):
    return _transition(request, pk, ReviewForm, _approve)


@require_POST
def reject(request, pk):
    return _transition(request, pk, ReviewForm, _reject)


@require_POST
def cancel(request, pk):
    return _transition(request, pk, CancelForm, _cancel)
