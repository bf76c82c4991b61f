"""Email notifications: reviewers hear about new requests, requestors about decisions. Always
after the transaction commits, and a failing mail server never fails the change."""

import logging
import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, Status
from conftest import add_member
from flagship.models import Role


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


def test_new_request_emails_the_org_reviewers_after_commit_only(
    acme, owner, admin, developer, viewer, outsider, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        request = propose(acme, developer, description="Roll out the new checkout")
        assert mailoutbox == [], "nothing is sent inside the transaction"

    assert mailoutbox == [], "nothing is sent before the commit"
    for callback in callbacks:
        callback()

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


def test_requestor_who_is_a_reviewer_is_not_emailed_about_own_request(
    acme, owner, admin, second_admin, mailoutbox, django_capture_on_commit_callbacks
):
    add_member(acme.org, "gone@acme.test", Role.ADMIN, is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        propose(acme, admin)

    assert [sorted(email.to) for email in mailoutbox] == [[second_admin.email, owner.email]]


def test_no_email_when_the_change_rolls_back(
    acme, owner, developer, mailoutbox, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        propose(acme, developer)
        raise RuntimeError("something after the proposal fails")

    assert mailoutbox == []
    assert not ApprovalRequest.objects.exists()


def test_requestor_is_emailed_when_the_change_is_applied(
    acme, admin, developer, mailoutbox, django_capture_on_commit_callbacks
):
    request = propose(acme, developer)

    with django_capture_on_commit_callbacks(execute=True):
        request.approve(by=admin, note="Ship it")

    assert request.status == Status.APPLIED
    assert [email.to for email in mailoutbox] == [[developer.email]]
    assert "Applied" in mailoutbox[0].subject


def test_requestor_is_emailed_when_a_scheduled_change_is_approved(
    acme, admin, developer, mailoutbox, django_capture_on_commit_callbacks
):
    request = propose(acme, developer, execution_date=timezone.now() + timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        request.approve(by=admin, note="For the maintenance window")

    assert request.status == Status.APPROVED
    assert [email.to for email in mailoutbox] == [[developer.email]]
    email = mailoutbox[0]
    assert "Approved, scheduled" in email.subject
    assert "For the maintenance window" in email.body
    assert request.execution_date.strftime("%Y-%m-%d %H:%M") in email.body


def test_requestor_is_emailed_when_rejected_with_the_note(
    acme, admin, developer, mailoutbox, django_capture_on_commit_callbacks
):
    request = propose(acme, developer)

    with django_capture_on_commit_callbacks(execute=True):
        request.reject(by=admin, note="Not during the sale")

    assert [email.to for email in mailoutbox] == [[developer.email]]
    assert "Rejected" in mailoutbox[0].subject
    assert "Not during the sale" in mailoutbox[0].body


def test_first_of_two_approvals_does_not_email_the_requestor(
    acme, admin, second_admin, developer, mailoutbox, django_capture_on_commit_callbacks
):
    acme.production.min_approvals = 2
    acme.production.save()
    request = propose(acme, developer)

    with django_capture_on_commit_callbacks(execute=True):
        request.approve(by=admin)

    assert request.status == Status.PENDING
    assert mailoutbox == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_failing_mail_server_does_not_fail_the_review(
    api, acme, admin, developer, settings, caplog
):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": closed_port(), "timeout": 2},
        }
    }
    created = api(developer).post(
        "/v1/approvals",
        {"flag_id": str(acme.flag.pk), "env_id": str(acme.production.pk), "change_type": "enable"},
        format="json",
    )
    assert created.status_code == 201

    with caplog.at_level(logging.ERROR, logger="flagship.notify"):
        response = api(admin).post(
            f"/v1/approvals/{created.json()['id']}/review", {"action": "approve"}, format="json"
        )

    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    assert ApprovalRequest.objects.get().status == Status.APPLIED
    assert "could not send the applied email" in caplog.text
