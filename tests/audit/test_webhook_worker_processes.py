"""Webhooks sent by real `run_worker` processes to an HTTP server on 127.0.0.1."""

import hashlib
import hmac
import json
import signal

import pytest
from django.db import connection

from audit.models import DeliveryStatus, WebhookDelivery
from flags.models import FlagState
from tests.processes import Receiver, WorkerProcess, wait_until

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

SECRET = "s3cret-signing-key-0123456789"


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def register_webhook(api, admin, receiver, settings) -> str:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    response = api(admin).post(
        "/v1/webhooks",
        {"url": receiver.url, "events": ["flag_state.updated"], "secret": SECRET},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def change_development_state(acme, admin) -> None:
    state = FlagState.objects.get(flag=acme.flag, environment=acme.development)
    state.change_directly(by=admin, changes={"enabled": True, "percentage_rollout": 2500})


def delivery_status() -> str:
    return WebhookDelivery.objects.get().status


def test_worker_signs_delivery_and_retries_after_a_500(
    api, acme, admin, receiver, settings, tmp_path
):
    webhook_id = register_webhook(api, admin, receiver, settings)
    receiver.statuses = [500]
    change_development_state(acme, admin)
    connection.close()

    worker = WorkerProcess(
        tmp_path / "worker.log",
        WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_RETRY_BASE_SECONDS="1",
    )
    try:
        wait_until(lambda: delivery_status() == DeliveryStatus.DELIVERED, timeout=30)
    finally:
        assert worker.stop() == 0

    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["x-flagship-delivery"] == second.headers["x-flagship-delivery"]
    expected = "sha256=" + hmac.new(SECRET.encode(), second.body, hashlib.sha256).hexdigest()
    assert second.headers["x-flagship-signature"] == expected
    assert second.headers["x-flagship-event"] == "flag_state.updated"
    body = json.loads(second.body)
    assert set(body) == {"type", "id", "org_id", "occurred_at", "data"}
    assert body["type"] == "flag_state.updated"
    assert body["org_id"] == str(acme.org.pk)
    assert body["data"]["after"]["percentage_rollout"] == 2500
    assert body["data"]["before"]["percentage_rollout"] == 0

    deliveries = api(admin).get(f"/v1/webhooks/{webhook_id}/deliveries").json()["data"]
    assert len(deliveries) == 1
    assert deliveries[0]["status"] == "delivered"
    assert deliveries[0]["attempts"] == 2
    assert deliveries[0]["last_status_code"] == 200
    assert "HTTP 500" in worker.output()


def test_delivery_is_not_lost_when_the_worker_dies_while_sending(
    api, acme, admin, receiver, settings, tmp_path
):
    register_webhook(api, admin, receiver, settings)
    receiver.statuses = ["hang"]
    change_development_state(acme, admin)
    connection.close()
    env = {"WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_TIMEOUT_SECONDS": "1"}

    doomed = WorkerProcess(tmp_path / "doomed.log", **env)
    assert receiver.got_request.wait(30), doomed.output()
    doomed.send(signal.SIGKILL)
    doomed.wait()
    receiver.release.set()
    assert delivery_status() == DeliveryStatus.PENDING

    restarted = WorkerProcess(tmp_path / "restarted.log", **env)
    try:
        # The dead worker's claim runs out (3 x the timeout) and the delivery goes out again.
        wait_until(lambda: delivery_status() == DeliveryStatus.DELIVERED, timeout=30)
    finally:
        assert restarted.stop() == 0

    assert len(receiver.requests) == 2
    assert len({request.headers["x-flagship-delivery"] for request in receiver.requests}) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 2
    assert delivery.last_status_code == 200


def test_delivery_queued_while_no_worker_runs_is_sent_by_the_next_one(
    api, acme, admin, receiver, settings, tmp_path
):
    register_webhook(api, admin, receiver, settings)
    change_development_state(acme, admin)
    connection.close()

    worker = WorkerProcess(
        tmp_path / "worker.log", "--exit-when-idle", WEBHOOKS_ALLOW_PRIVATE_TARGETS="true"
    )

    assert worker.wait(timeout=60) == 0, worker.output()
    assert delivery_status() == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1
