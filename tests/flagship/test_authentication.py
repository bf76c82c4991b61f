import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from flagship.authentication import MemberJWTAuthentication


@pytest.mark.django_db
def test_bearer_authentication_loads_user_membership_and_org_in_one_query(admin):
    token = RefreshToken.for_user(admin).access_token
    request = APIRequestFactory().get("/v1/approvals", HTTP_AUTHORIZATION=f"Bearer {token}")

    with CaptureQueriesContext(connection) as captured:
        user, _ = MemberJWTAuthentication().authenticate(request)
        seen = (user.role, user.org_id, user.membership.org.name)

    assert len(captured) == 1
    assert seen == ("admin", admin.membership.org_id, "Acme")


@pytest.mark.django_db
def test_a_remembered_token_is_refused_once_it_expires(admin, api):
    token = AccessToken.for_user(admin)
    # Long enough for the first request on a busy machine (one second once was not).
    token.set_exp(lifetime=timedelta(seconds=3))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/v1/approvals").status_code == 200

    time.sleep(max(0.0, token["exp"] - time.time()) + 1.1)

    assert client.get("/v1/approvals").status_code == 401


@pytest.mark.django_db
def test_a_remembered_token_still_checks_the_user_on_every_request(admin, api):
    client = api(admin)
    assert client.get("/v1/approvals").status_code == 200
    admin.is_active = False
    admin.save(update_fields=["is_active"])

    assert client.get("/v1/approvals").status_code == 401
