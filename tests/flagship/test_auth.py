"""Bearer tokens: only a genuine, unexpired access token of a current member gets in (SPEC §8)."""

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import PASSWORD, add_member
from flagship.models import Role


def login(api, email, password=PASSWORD):
    return api().post("/v1/auth/login", {"email": email, "password": password}, format="json")


def get_with(api, token: str):
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/v1/approvals")


def assert_unauthorized(response):
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_login_returns_user_organization_and_tokens(api, acme, owner):
    response = login(api, "owner@acme.test")

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "owner@acme.test"
    assert body["user"]["role"] == Role.OWNER
    assert body["organization"]["id"] == str(acme.org.pk)
    assert set(body["tokens"]) == {"access_token", "refresh_token", "expires_at"}
    assert body["tokens"]["expires_at"].endswith("Z")
    assert get_with(api, body["tokens"]["access_token"]).status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("owner@acme.test", "wrong-password"), ("nobody@acme.test", PASSWORD)],
    ids=["wrong-password", "unknown-email"],
)
def test_login_with_bad_credentials_answers_401_without_saying_which(api, owner, email, password):
    response = login(api, email, password)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid email or password"}


def test_repeated_failed_logins_answer_429_with_retry_after(api, owner, settings):
    settings.LOGIN_FAILURES_PER_EMAIL = 3
    for _ in range(3):
        assert login(api, "owner@acme.test", "wrong-password").status_code == 401

    response = login(api, "owner@acme.test", PASSWORD)

    assert response.status_code == 429
    assert set(response.json()) == {"error"}
    assert 1 <= int(response["Retry-After"]) <= settings.LOGIN_FAILURE_WINDOW_SECONDS


def test_access_token_with_a_forged_signature_is_refused(api, owner):
    genuine = jwt.decode(
        str(AccessToken.for_user(owner)), options={"verify_signature": False}, algorithms=["HS256"]
    )
    forged = jwt.encode(genuine, "not-the-server-secret-" * 3, algorithm="HS256")

    assert_unauthorized(get_with(api, forged))


def test_access_token_signed_with_alg_none_is_refused(api, owner):
    claims = jwt.decode(
        str(AccessToken.for_user(owner)), options={"verify_signature": False}, algorithms=["HS256"]
    )
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."

    assert_unauthorized(get_with(api, unsigned))


def test_access_token_with_a_tampered_payload_is_refused(api, owner, admin):
    header, _payload, signature = str(AccessToken.for_user(admin)).split(".")
    claims = jwt.decode(
        str(AccessToken.for_user(admin)), options={"verify_signature": False}, algorithms=["HS256"]
    )
    claims["user_id"] = str(owner.pk)

    assert_unauthorized(get_with(api, f"{header}.{b64(claims)}.{signature}"))


def test_expired_access_token_is_refused(api, owner):
    token = AccessToken.for_user(owner)
    token.set_exp(from_time=timezone.now() - timedelta(hours=2), lifetime=timedelta(minutes=60))

    assert_unauthorized(get_with(api, str(token)))


def test_refresh_token_is_not_accepted_as_an_access_token(api, owner):
    assert_unauthorized(get_with(api, str(RefreshToken.for_user(owner))))


def test_rotated_refresh_token_cannot_be_replayed(api, owner):
    refresh = login(api, "owner@acme.test").json()["tokens"]["refresh_token"]
    first = api().post("/v1/auth/refresh", {"refresh_token": refresh}, format="json")
    assert first.status_code == 200
    assert set(first.json()) == {"access_token", "refresh_token", "expires_at"}

    replay = api().post("/v1/auth/refresh", {"refresh_token": refresh}, format="json")

    assert_unauthorized(replay)
    # The rotated-in token still works once.
    rotated = first.json()["refresh_token"]
    assert (
        api().post("/v1/auth/refresh", {"refresh_token": rotated}, format="json").status_code == 200
    )


def test_access_token_signed_with_the_server_key_but_another_algorithm_is_refused(api, owner):
    claims = jwt.decode(
        str(AccessToken.for_user(owner)), options={"verify_signature": False}, algorithms=["HS256"]
    )
    other_algorithm = jwt.encode(claims, settings.SECRET_KEY, algorithm="HS512")

    assert_unauthorized(get_with(api, other_algorithm))


def test_token_of_a_deleted_user_is_refused(api, acme):
    leaver = add_member(acme.org, "leaver@acme.test", Role.DEVELOPER)
    access = str(AccessToken.for_user(leaver))
    refresh = str(RefreshToken.for_user(leaver))
    leaver.delete()

    assert_unauthorized(get_with(api, access))
    assert_unauthorized(api().post("/v1/auth/refresh", {"refresh_token": refresh}, format="json"))


def test_tokens_of_a_removed_member_are_refused_at_once(api, acme, owner, developer):
    access = str(AccessToken.for_user(developer))
    refresh = str(RefreshToken.for_user(developer))
    assert get_with(api, access).status_code == 200

    removed = api(owner).delete(f"/v1/members/{developer.pk}")
    assert removed.status_code == 204

    assert_unauthorized(get_with(api, access))
    assert_unauthorized(api().post("/v1/auth/refresh", {"refresh_token": refresh}, format="json"))
    assert login(api, "dev@acme.test").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer not.a.jwt", "Bearer a b", "Basic b3duZXI6cGFzcw==", "Bearer " + "x" * 5000],
)
def test_malformed_authorization_headers_are_refused(api, owner, header):
    client = api()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/v1/approvals")

    assert response.status_code == 401
    assert set(response.json()) == {"error"}
