"""Hostile input, generated from the OpenAPI schema by schemathesis: every operation, called as a
real owner with real ids in the URL and arbitrary (valid and invalid) bodies and query strings,
never answers 5xx and answers what the schema documents."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from approvals.models import ApprovalRequest, ChangeType
from audit.models import Webhook
from flagship.wsgi import application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def keep_the_test_transaction():
    """Calls go straight to the WSGI app, not through Django's test client, so do what the test
    client does: keep Django from closing the test's connection (and its transaction) at the
    start and end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Each operation is its own test with its own personas; slow hashing would dominate."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seeded(acme, owner, developer, settings):
    """Real objects for the URL's ids, and an owner's access token."""
    settings.WRITE_THROTTLE_RATE = (100_000, 60)
    approval = ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=developer,
        change_type=ChangeType.ENABLE,
    )
    ids = {
        "project_id": str(acme.project.pk),
        "env_id": str(acme.production.pk),
        "flag_key": acme.flag.key,
        "user_id": str(developer.pk),
    }
    webhook = Webhook.objects.create(
        org=acme.org, url="https://hooks.example.com/flagship", events=["*"], secret="s3cret"
    )
    ids_by_collection = {
        "approvals": str(approval.pk),
        "webhooks": str(webhook.pk),
        "projects": str(acme.project.pk),
        "environments": str(acme.staging.pk),
    }
    return {
        "ids": ids,
        "ids_by_collection": ids_by_collection,
        "token": str(RefreshToken.for_user(owner).access_token),
    }


def use_real_ids(case, seeded) -> None:
    for name in list(case.path_parameters or {}):
        if name == "id":
            collection = case.path.split("/{id}")[0].rsplit("/", 1)[-1]
            case.path_parameters[name] = seeded["ids_by_collection"][collection]
        elif name in seeded["ids"]:
            case.path_parameters[name] = seeded["ids"][name]


# Loaded once at collection through the WSGI app: generating the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/v1/schema/", application)


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_survives_generated_input(case, seeded):
    use_real_ids(case, seeded)
    # Each call runs in a savepoint that is rolled back, so every example starts from the same
    # seeded data (a generated DELETE does not remove the project for the examples after it).
    with transaction.atomic():
        case.call_and_validate(
            headers={"Authorization": f"Bearer {seeded['token']}"}, checks=CHECKS
        )
        transaction.set_rollback(True)
