import pytest
from django.test import Client

from approvals.models import ApprovalRequest, ChangeType


@pytest.fixture
def browser_for():
    """`browser_for(user)` is a Django test client with that user's session."""

    def make(user, **options):
        client = Client(**options)
        client.force_login(user)
        return client

    return make


@pytest.fixture
def propose(acme, developer):
    """`propose(**overrides)` creates a request by the developer: enable 50% of new-checkout in
    production unless told otherwise."""

    def make(**overrides):
        fields = {
            "flag": acme.flag,
            "environment": acme.production,
            "requestor": developer,
            "change_type": ChangeType.ENABLE_WITH_ROLLOUT,
            "payload": {"enabled": True, "percentage_rollout": 5000},
            "description": "Half of the traffic gets the new checkout.",
        }
        fields.update(overrides)
        return ApprovalRequest.propose(**fields)

    return make
