"""Writes are throttled per user and failed logins per IP and per email, with 429 and
Retry-After, counted in the shared cache so that every app server sees the same counts."""

import uuid

import pytest
import redis
from django.core.cache.backends.redis import RedisCache
from rest_framework.test import APIRequestFactory

from conftest import PASSWORD
from flagship.throttling import WriteRateThrottle

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_available() -> bool:
    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason=f"no Redis at {REDIS_URL}")


def create_nothing(client):
    """A write that changes nothing (400): it still counts against the write budget."""
    return client.post("/v1/approvals", {}, format="json")


def test_writes_beyond_the_rate_answer_429_with_retry_after(api, developer, settings):
    settings.WRITE_THROTTLE_RATE = (3, 60)
    client = api(developer)
    assert [create_nothing(client).status_code for _ in range(3)] == [400, 400, 400]

    response = create_nothing(client)

    assert response.status_code == 429
    assert set(response.json()) == {"error"}
    assert 1 <= int(response["Retry-After"]) <= 60


def test_reads_are_not_counted_as_writes(api, developer, settings):
    settings.WRITE_THROTTLE_RATE = (2, 60)
    client = api(developer)
    for _ in range(5):
        assert client.get("/v1/approvals").status_code == 200

    assert create_nothing(client).status_code == 400


def test_each_user_has_their_own_write_budget(api, developer, admin, settings):
    settings.WRITE_THROTTLE_RATE = (2, 60)
    for _ in range(2):
        create_nothing(api(developer))
    assert create_nothing(api(developer)).status_code == 429

    assert create_nothing(api(admin)).status_code == 400


def test_failed_logins_from_one_ip_are_throttled_across_emails(api, owner, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    settings.LOGIN_FAILURES_PER_EMAIL = 100
    for index in range(3):
        response = api().post(
            "/v1/auth/login",
            {"email": f"guess{index}@acme.test", "password": "nope"},
            format="json",
        )
        assert response.status_code == 401

    response = api().post(
        "/v1/auth/login", {"email": "owner@acme.test", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_successful_login_clears_the_email_failure_count(api, owner, settings):
    settings.LOGIN_FAILURES_PER_EMAIL = 3
    login = {"email": "owner@acme.test"}
    for _ in range(2):
        api().post("/v1/auth/login", {**login, "password": "nope"}, format="json")
    assert (
        api().post("/v1/auth/login", {**login, "password": PASSWORD}, format="json").status_code
        == 200
    )
    for _ in range(2):
        api().post("/v1/auth/login", {**login, "password": "nope"}, format="json")

    assert (
        api().post("/v1/auth/login", {**login, "password": PASSWORD}, format="json").status_code
        == 200
    )


@needs_redis
def test_two_servers_sharing_redis_share_one_write_budget(developer, settings):
    settings.WRITE_THROTTLE_RATE = (4, 60)
    prefix = f"flagship-test-{uuid.uuid4().hex}"
    # Two app servers: two independent cache clients on the same Redis.
    first = WriteRateThrottle(RedisCache(REDIS_URL, {"KEY_PREFIX": prefix}))
    second = WriteRateThrottle(RedisCache(REDIS_URL, {"KEY_PREFIX": prefix}))
    request = APIRequestFactory().post("/v1/approvals")
    request.user = developer

    allowed = [
        throttle.allow_request(request, view=None)
        for throttle in (first, second, first, second, first, second)
    ]

    assert allowed == [True, True, True, True, False, False]
    assert 1 <= second.wait() <= 60


@needs_redis
def test_api_writes_are_throttled_through_redis(api, developer, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"flagship-test-{uuid.uuid4().hex}",
        }
    }
    settings.WRITE_THROTTLE_RATE = (2, 60)
    client = api(developer)

    statuses = [create_nothing(client).status_code for _ in range(3)]

    assert statuses == [400, 400, 429]
