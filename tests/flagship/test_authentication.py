import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt.tokens import RefreshToken

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
