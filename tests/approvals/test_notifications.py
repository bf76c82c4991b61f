"""Email notifications: reviewers hear about new requests, requestors about decisions. Queued
in the transaction of the change (nothing for a change that rolls back) and sent by the worker,
which retries while the mail server fails; a failing mail server never fails the change."""

import logging
import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, QueuedEmail, Status
from conftest import add_member
from flagship.models import Role
from tests.approvals.helpers import (
    create_body,
    require_two_approvals,
    send_and_forget_queued_emails,
    send_queued_emails,
)


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = "http://testserver-site"


def propose(acme, requestor, **fields) -> ApprovalRequest:
    return ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=requestor,
        change_type=ChangeType.ENABLE,
        **fields,
    )


def proposed_and_announced(acme, requestor, mailoutbox, **fields) -> ApprovalRequest:
    """A request whose "review requested" email has gone out, so tests see only what follows."""
    request = propose(acme, requestor, **fields)
    send_and_forget_queued_emails(mailoutbox)
    return request


def test_new_request_is_queued_with_the_change_and_emailed_to_the_reviewers_by_the_worker(
    acme, owner, admin, developer, viewer, outsider, mailoutbox
):
    request = propose(acme, developer, description="Roll out the new checkout")

    assert mailoutbox == [], "the change itself sends nothing"
    queued = QueuedEmail.objects.get()
    assert (queued.approval_request, queued.event, queued.status) == (request, "created", "pending")

    assert send_queued_emails() == 1

    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert sorted(email.to) == [admin.email, owner.email]
    assert "Review requested" in email.subject
    assert "new-checkout" in email.subject
    assert f"http://testserver-site/review/{request.pk}/" in email.body
    assert "Roll out the new checkout" in email.body
    assert 'Payload: {"enabled": true}' in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert f"http://testserver-site/review/{request.pk}/" in html
    queued.refresh_from_db()
    assert (queued.status, queued.attempts, queued.next_attempt_at) == ("sent", 1, None)
    assert send_queued_emails() == 0, "a sent email is not sent again"


def test_requestor_who_is_a_reviewer_is_not_emailed_about_own_request(
    acme, owner, admin, second_admin, mailoutbox
):
    add_member(acme.org, "gone@acme.test", Role.ADMIN, is_active=False)

    propose(acme, admin)
    send_queued_emails()

    assert [sorted(email.to) for email in mailoutbox] == [[second_admin.email, owner.email]]


def test_no_email_when_the_change_rolls_back(acme, owner, developer, mailoutbox):
    with pytest.raises(RuntimeError), transaction.atomic():
        propose(acme, developer)
        raise RuntimeError("something after the proposal fails")

    assert not QueuedEmail.objects.exists()
    assert send_queued_emails() == 0
    assert mailoutbox == []
    assert not ApprovalRequest.objects.exists()


def test_requestor_is_emailed_when_the_change_is_applied(acme, admin, developer, mailoutbox):
    request = proposed_and_announced(acme, developer, mailoutbox)

    request.approve(by=admin, note="Ship it")
    send_queued_emails()

    assert request.status == Status.APPLIED
    assert [email.to for email in mailoutbox] == [[developer.email]]
    assert "Applied" in mailoutbox[0].subject


def test_requestor_is_emailed_when_a_scheduled_change_is_approved(
    acme, admin, developer, mailoutbox
):
    request = proposed_and_announced(
        acme, developer, mailoutbox, execution_date=timezone.now() + timedelta(hours=2)
    )

    request.approve(by=admin, note="For the maintenance window")
    send_queued_emails()

    assert request.status == Status.APPROVED
    assert [email.to for email in mailoutbox] == [[developer.email]]
    email = mailoutbox[0]
    assert "Approved, scheduled" in email.subject
    assert "For the maintenance window" in email.body
    assert request.execution_date.strftime("%Y-%m-%d %H:%M") in email.body


def test_requestor_is_emailed_when_rejected_with_the_note(acme, admin, developer, mailoutbox):
    request = proposed_and_announced(acme, developer, mailoutbox)

    request.reject(by=admin, note="Not during the sale")
    send_queued_emails()

    assert [email.to for email in mailoutbox] == [[developer.email]]
    assert "Rejected" in mailoutbox[0].subject
    assert "Not during the sale" in mailoutbox[0].body


def test_first_of_two_approvals_does_not_email_the_requestor(
    acme, admin, second_admin, developer, mailoutbox
):
    require_two_approvals(acme)
    request = proposed_and_announced(acme, developer, mailoutbox)

    request.approve(by=admin)
    send_queued_emails()

    assert request.status == Status.PENDING
    assert mailoutbox == []


@pytest.fixture
def failing_mail_server(settings):
    """An SMTP server that refuses every connection: a port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 2},
        }
    }


def test_failing_mail_server_does_not_fail_the_review_and_the_email_is_retried(
    api, acme, admin, developer, settings, caplog, mailoutbox, failing_mail_server
):
    created = api(developer).post("/v1/approvals", create_body(acme), format="json")
    assert created.status_code == 201
    response = api(admin).post(
        f"/v1/approvals/{created.json()['id']}/review", {"action": "approve"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    assert ApprovalRequest.objects.get().status == Status.APPLIED
    applied_email = QueuedEmail.objects.get(event="applied")

    with caplog.at_level(logging.WARNING, logger="flagship.notify"):
        send_queued_emails()

    assert "could not send the applied email" in caplog.text
    applied_email.refresh_from_db()
    assert applied_email.status == "pending"
    assert applied_email.attempts == 1
    assert "ConnectionRefusedError" in applied_email.last_error
    assert applied_email.next_attempt_at > timezone.now(), "retried later, with back-off"

    # The mail server is back when the retry comes due.
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    QueuedEmail.objects.update(next_attempt_at=timezone.now())
    send_queued_emails()

    applied_email.refresh_from_db()
    assert (applied_email.status, applied_email.attempts) == ("sent", 2)
    assert [developer.email] in [email.to for email in mailoutbox]
    assert not QueuedEmail.objects.exclude(status="sent").exists(), "the created email too"


def test_email_fails_for_good_after_the_last_attempt(
    acme, admin, developer, settings, failing_mail_server
):
    settings.EMAIL_MAX_ATTEMPTS = 2
    propose(acme, developer)

    for _ in range(2):
        send_queued_emails()
        QueuedEmail.objects.filter(status="pending").update(next_attempt_at=timezone.now())

    queued = QueuedEmail.objects.get()
    assert (queued.status, queued.attempts, queued.next_attempt_at) == ("failed", 2, None)
    assert send_queued_emails() == 0
