"""`/v1/webhooks`: owners and admins manage their organization's webhooks."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry, Webhook, WebhookDelivery
from flags.models import FlagState

SECRET = "s3cret-signing-key-0123456789"


@pytest.fixture
def allow_local_targets(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True


def webhook_body(**overrides):
    return {
        "url": "http://127.0.0.1:8201/hooks",
        "events": ["approval.created", "flag.approved_change_applied"],
        "secret": SECRET,
        **overrides,
    }


def make_webhook(org, **fields) -> Webhook:
    return Webhook.objects.create(
        org=org,
        url=fields.pop("url", "https://hooks.example.com/flagship"),
        events=fields.pop("events", ["*"]),
        secret=fields.pop("secret", SECRET),
        **fields,
    )


def test_admin_creates_webhook_and_secret_is_never_returned(api, acme, admin, allow_local_targets):
    response = api(admin).post("/v1/webhooks", webhook_body(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret" not in body
    assert SECRET not in response.content.decode()
    assert body["url"] == "http://127.0.0.1:8201/hooks"
    assert body["events"] == ["approval.created", "flag.approved_change_applied"]
    assert body["is_active"] is True
    assert body["org_id"] == str(acme.org.pk)
    webhook = Webhook.objects.get(pk=body["id"])
    assert webhook.secret == SECRET
    entry = AuditEntry.objects.get(action="webhook.created", resource_id=str(webhook.pk))
    assert entry.actor == admin
    assert SECRET not in str(entry.after_state)


def test_list_and_detail_never_return_the_secret(api, acme, owner):
    webhook = make_webhook(acme.org)

    listing = api(owner).get("/v1/webhooks")
    detail = api(owner).get(f"/v1/webhooks/{webhook.pk}")

    assert listing.status_code == 200
    assert listing.json()["total"] == 1
    assert listing.json()["data"][0]["id"] == str(webhook.pk)
    assert detail.status_code == 200
    for response in (listing, detail):
        assert SECRET not in response.content.decode()
        assert "secret" not in str(response.json()).replace("secret_updated_at", "")


@pytest.mark.parametrize("persona", ["developer", "viewer"])
def test_developers_and_viewers_get_403_on_every_webhook_endpoint(api, acme, persona, request):
    user = request.getfixturevalue(persona)
    webhook = make_webhook(acme.org)
    client = api(user)

    responses = [
        client.get("/v1/webhooks"),
        client.post("/v1/webhooks", webhook_body(), format="json"),
        client.get(f"/v1/webhooks/{webhook.pk}"),
        client.patch(f"/v1/webhooks/{webhook.pk}", {"is_active": False}, format="json"),
        client.delete(f"/v1/webhooks/{webhook.pk}"),
        client.get(f"/v1/webhooks/{webhook.pk}/deliveries"),
    ]

    assert [response.status_code for response in responses] == [403] * 6
    assert all("error" in response.json() for response in responses)
    assert Webhook.objects.get(pk=webhook.pk).is_active


def test_webhook_of_another_org_is_404(api, acme, other_org, outsider):
    webhook = make_webhook(acme.org)
    client = api(outsider)

    responses = [
        client.get(f"/v1/webhooks/{webhook.pk}"),
        client.patch(f"/v1/webhooks/{webhook.pk}", {"is_active": False}, format="json"),
        client.delete(f"/v1/webhooks/{webhook.pk}"),
        client.get(f"/v1/webhooks/{webhook.pk}/deliveries"),
    ]

    assert [response.status_code for response in responses] == [404] * 4
    assert responses[0].json() == {"error": "webhook not found"}
    assert client.get("/v1/webhooks").json()["total"] == 0
    assert Webhook.objects.filter(pk=webhook.pk, is_active=True).exists()


def test_unauthenticated_request_is_401(api, acme):
    assert api().get("/v1/webhooks").status_code == 401


def test_unknown_event_is_400_listing_allowed_values(api, acme, admin, allow_local_targets):
    response = api(admin).post(
        "/v1/webhooks", webhook_body(events=["approval.created", "flag.deleted"]), format="json"
    )

    assert response.status_code == 400
    message = response.json()["fields"]["events"][0]
    assert "flag.deleted" in message
    for allowed in (
        "approval.created",
        "approval.approved",
        "approval.rejected",
        "approval.cancelled",
        "flag.approved_change_applied",
        "flag_state.updated",
        "*",
    ):
        assert allowed in message
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": "approval.created"}, "events"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_webhook_body_is_400_naming_the_field(
    api, acme, admin, allow_local_targets, body, field
):
    response = api(admin).post("/v1/webhooks", webhook_body(**body), format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Webhook.objects.exists()


def test_missing_secret_is_400(api, acme, admin, allow_local_targets):
    body = webhook_body()
    del body["secret"]

    response = api(admin).post("/v1/webhooks", body, format="json")

    assert response.status_code == 400
    assert "secret" in response.json()["fields"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/hook",
        "http://localhost:8000/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://10.0.0.5/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_internal_targets_are_refused_by_default(api, acme, admin, url):
    response = api(admin).post("/v1/webhooks", webhook_body(url=url), format="json")

    assert response.status_code == 400
    assert "may not reach" in response.json()["error"]
    assert "url" in response.json()["fields"]
    assert not Webhook.objects.exists()


def test_patch_refuses_internal_target(api, acme, admin):
    webhook = make_webhook(acme.org)

    response = api(admin).patch(
        f"/v1/webhooks/{webhook.pk}", {"url": "http://127.0.0.1/x"}, format="json"
    )

    assert response.status_code == 400
    webhook.refresh_from_db()
    assert webhook.url == "https://hooks.example.com/flagship"


def test_patch_updates_and_audits_without_the_secret(api, acme, admin):
    webhook = make_webhook(acme.org, events=["approval.created"])
    new_secret = "rotated-secret-abcdefghijklmnop"

    response = api(admin).patch(
        f"/v1/webhooks/{webhook.pk}",
        {"events": ["*"], "is_active": False, "secret": new_secret},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["events"] == ["*"]
    assert response.json()["is_active"] is False
    assert "secret" not in response.json()
    webhook.refresh_from_db()
    assert webhook.secret == new_secret
    entry = AuditEntry.objects.get(action="webhook.updated", resource_id=str(webhook.pk))
    assert entry.before_state["events"] == ["approval.created"]
    assert entry.after_state["is_active"] is False
    assert entry.after_state["secret_updated_at"] != entry.before_state["secret_updated_at"]
    assert new_secret not in str(entry.after_state) + str(entry.before_state)


def test_delete_removes_webhook_and_audits(api, acme, owner):
    webhook = make_webhook(acme.org)

    response = api(owner).delete(f"/v1/webhooks/{webhook.pk}")

    assert response.status_code == 204
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert AuditEntry.objects.filter(action="webhook.deleted", resource_id=str(webhook.pk)).exists()


def test_deliveries_lists_status_code_error_and_attempts_newest_first(api, acme, admin):
    webhook = make_webhook(acme.org, events=["flag_state.updated"])
    state = FlagState.objects.get(flag=acme.flag, environment=acme.development)
    state.change_directly(by=admin, changes={"enabled": True})
    state.change_directly(by=admin, changes={"percentage_rollout": 2500})
    WebhookDelivery.objects.filter(payload__data__after__percentage_rollout=2500).update(
        attempts=2, last_status_code=500, last_error="HTTP 500 Internal Server Error"
    )

    response = api(admin).get(f"/v1/webhooks/{webhook.pk}/deliveries?limit=1")

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    assert body["limit"] == 1
    assert body["has_more"] is True
    newest = body["data"][0]
    assert newest["event_type"] == "flag_state.updated"
    assert newest["status"] == "pending"
    assert newest["attempts"] == 2
    assert newest["last_status_code"] == 500
    assert newest["last_error"] == "HTTP 500 Internal Server Error"
    assert newest["payload"]["data"]["after"]["percentage_rollout"] == 2500


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_webhook_and_delivery_lists_take_a_fixed_number_of_queries(api, acme, admin):
    webhook = make_webhook(acme.org, events=["flag_state.updated"])
    state = FlagState.objects.get(flag=acme.flag, environment=acme.development)
    state.change_directly(by=admin, changes={"enabled": True})
    client = api(admin)
    few = [
        queries_for(client, "/v1/webhooks"),
        queries_for(client, f"/v1/webhooks/{webhook.pk}/deliveries"),
    ]

    for number in range(5):
        make_webhook(acme.org, events=["flag_state.updated"])
        state.change_directly(by=admin, changes={"percentage_rollout": number * 100})
    many = [
        queries_for(client, "/v1/webhooks"),
        queries_for(client, f"/v1/webhooks/{webhook.pk}/deliveries"),
    ]

    assert WebhookDelivery.objects.filter(webhook=webhook).count() == 6
    assert many == few
