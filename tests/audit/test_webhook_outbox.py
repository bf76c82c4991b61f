"""The audit log feeds the webhook outbox; the worker's send step signs, retries and gives up."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType
from audit.models import AuditEntry, DeliveryStatus, Webhook, WebhookDelivery, record
from audit.webhooks import claim_next_due, deliver_next_due
from flags.models import FlagState
from tests.processes import Receiver

SECRET = "s3cret-signing-key-0123456789"


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def allow_local_targets(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True


def make_webhook(org, url="https://hooks.example.com/flagship", **fields) -> Webhook:
    return Webhook.objects.create(
        org=org, url=url, events=fields.pop("events", ["*"]), secret=SECRET, **fields
    )


def change_development_state(by, **changes) -> FlagState:
    state = FlagState.objects.get(
        flag__key="new-checkout", environment__slug="development", flag__project__org=by.org_id
    )
    state.change_directly(by=by, changes=changes)
    return state


def test_audit_entry_enqueues_a_delivery_per_subscribed_active_webhook(acme, admin, other_org):
    applied = make_webhook(acme.org, events=["flag_state.updated"])
    everything = make_webhook(acme.org, events=["*"])
    make_webhook(acme.org, events=["approval.created"])
    make_webhook(acme.org, events=["*"], is_active=False)
    make_webhook(other_org.org, events=["*"])

    change_development_state(admin, enabled=True)

    entry = AuditEntry.objects.get(action="flag_state.updated")
    deliveries = WebhookDelivery.objects.all()
    assert {delivery.webhook_id for delivery in deliveries} == {applied.pk, everything.pk}
    for delivery in deliveries:
        assert delivery.event_type == "flag_state.updated"
        assert delivery.event_id == entry.pk
        assert delivery.status == DeliveryStatus.PENDING
        assert delivery.attempts == 0


def test_delivery_payload_carries_the_audit_entry(acme, admin, developer):
    make_webhook(acme.org, events=["approval.created"])

    request = ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=developer,
        change_type=ChangeType.ENABLE,
    )

    entry = AuditEntry.objects.get(action="approval.created")
    payload = WebhookDelivery.objects.get().payload
    assert payload["type"] == "approval.created"
    assert payload["id"] == str(entry.pk)
    assert payload["org_id"] == str(acme.org.pk)
    assert payload["occurred_at"].startswith(entry.created_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert payload["data"]["resource"] == {"type": "approval_request", "id": str(request.pk)}
    assert payload["data"]["actor"] == {"type": "user", "id": str(developer.pk)}
    assert payload["data"]["after"]["payload"] == {"enabled": True}
    assert payload["data"]["before"] is None
    assert payload["data"]["metadata"]["approval_id"] == str(request.pk)


def test_deliveries_roll_back_with_the_change(acme, admin):
    make_webhook(acme.org)

    with pytest.raises(RuntimeError), transaction.atomic():
        change_development_state(admin, enabled=True)
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the change fails after its audit entry")

    assert WebhookDelivery.objects.count() == 0
    assert not AuditEntry.objects.filter(action="flag_state.updated").exists()


def test_recording_looks_up_webhooks_with_the_chain_lock(
    acme, other_org, django_assert_num_queries
):
    # Lock the org's chain and read its last link and the org's webhooks; insert the entry.
    with django_assert_num_queries(2):
        record(org_id=acme.org.pk, actor=None, action="flag.touched", resource=acme.flag)

    active = make_webhook(acme.org)
    make_webhook(acme.org, is_active=False)
    make_webhook(other_org.org)
    with django_assert_num_queries(3):  # and its deliveries
        entry = record(org_id=acme.org.pk, actor=None, action="flag.touched", resource=acme.flag)
    assert list(WebhookDelivery.objects.values_list("webhook", "event_id")) == [
        (active.pk, entry.pk)
    ]


def test_worker_sends_signed_delivery(acme, admin, receiver, allow_local_targets):
    webhook = make_webhook(acme.org, url=receiver.url, events=["flag_state.updated"])
    change_development_state(admin, enabled=True)

    delivery = deliver_next_due()

    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), sent.body, hashlib.sha256).hexdigest()
    assert sent.headers["x-flagship-signature"] == expected
    assert sent.headers["x-flagship-event"] == "flag_state.updated"
    assert sent.headers["x-flagship-delivery"] == str(delivery.pk)
    assert sent.headers["content-type"] == "application/json"
    assert sent.path == "/hooks/flagship"
    body = json.loads(sent.body)
    assert body["type"] == "flag_state.updated"
    assert body["data"]["after"]["enabled"] is True
    delivery.refresh_from_db()
    assert delivery.webhook == webhook
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None
    assert deliver_next_due() is None


def test_failed_send_is_retried_with_exponential_back_off_then_fails(
    acme, admin, receiver, allow_local_targets, settings
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    receiver.statuses = [500, 503, 500]
    make_webhook(acme.org, url=receiver.url)
    change_development_state(admin, enabled=True)
    delays = []

    for _ in range(2):
        before = timezone.now()
        delivery = deliver_next_due()
        delivery.refresh_from_db()
        delays.append(round((delivery.next_attempt_at - before).total_seconds()))
        assert deliver_next_due() is None, "not due again before its back-off"
        WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliver_next_due()

    assert len(receiver.requests) == 3
    assert delays == [10, 20]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 3
    assert delivery.last_status_code == 500
    assert "HTTP 500" in delivery.last_error
    assert delivery.next_attempt_at is None
    assert deliver_next_due() is None


def test_send_time_check_refuses_internal_target(acme, admin, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    # Stored while allowed (or its DNS changed since): the worker checks again before sending.
    make_webhook(acme.org, url=receiver.url)
    change_development_state(admin, enabled=True)

    delivery = deliver_next_due()

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert "may not reach" in delivery.last_error
    assert delivery.last_status_code is None


def test_delivery_of_deactivated_webhook_fails_without_sending(
    acme, admin, receiver, allow_local_targets
):
    webhook = make_webhook(acme.org, url=receiver.url)
    change_development_state(admin, enabled=True)
    Webhook.objects.filter(pk=webhook.pk).update(is_active=False)

    delivery = deliver_next_due()

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "webhook is inactive"


def test_claimed_delivery_comes_due_again_after_the_lease(acme, admin, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    make_webhook(acme.org)
    change_development_state(admin, enabled=True)

    claimed = claim_next_due()

    # A worker dying now leaves the claim behind; nobody else takes it during the lease...
    assert claim_next_due() is None
    claimed.refresh_from_db()
    assert claimed.attempts == 1
    lease = (claimed.next_attempt_at - claimed.updated_at).total_seconds()
    assert 14 <= lease <= 16
    # ...and once it runs out the delivery is due again.
    assert WebhookDelivery.objects.due(now=claimed.next_attempt_at).get() == claimed
