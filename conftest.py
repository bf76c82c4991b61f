"""Persona fixtures shared by every test: one organization 'Acme' with a person of each role,
and an outsider from another organization, plus API clients that log in with real JWTs."""

from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from flags.models import Environment, Flag, FlagType, Project
from flagship.bootstrap import create_organization
from flagship.models import Membership, Organization, Role, User

PASSWORD = "correct-horse-battery"


def pytest_configure(config):
    # The real hasher is slow by design; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(config, items):
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (row locks, real concurrency)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def clear_cache():
    """Throttle counters live in the cache; every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@dataclass
class Workspace:
    org: Organization
    project: Project
    development: Environment
    staging: Environment
    production: Environment
    flag: Flag


def add_member(org, email: str, role: str, **extra) -> User:
    user = User.objects.create_user(email=email, password=PASSWORD, name=email.split("@")[0])
    for field, value in extra.items():
        setattr(user, field, value)
    user.save()
    Membership.objects.create(user=user, org=org, role=role)
    return user


def make_workspace(name: str, owner_email: str) -> tuple[Workspace, User]:
    org, owner, project = create_organization(
        name=name, owner_email=owner_email, owner_password=PASSWORD, owner_name="owner"
    )
    environments = {environment.slug: environment for environment in project.environments.all()}
    flag = Flag.create_audited(
        by=owner,
        project=project,
        key="new-checkout",
        name="New checkout",
        flag_type=FlagType.BOOLEAN,
        default_value=False,
    )
    workspace = Workspace(
        org=org,
        project=project,
        development=environments["development"],
        staging=environments["staging"],
        production=environments["production"],
        flag=flag,
    )
    return workspace, owner


@pytest.fixture
def acme_and_owner(db):
    return make_workspace("Acme", "owner@acme.test")


@pytest.fixture
def acme(acme_and_owner) -> Workspace:
    return acme_and_owner[0]


@pytest.fixture
def owner(acme_and_owner) -> User:
    return acme_and_owner[1]


@pytest.fixture
def admin(acme) -> User:
    return add_member(acme.org, "admin@acme.test", Role.ADMIN)


@pytest.fixture
def second_admin(acme) -> User:
    return add_member(acme.org, "admin2@acme.test", Role.ADMIN)


@pytest.fixture
def developer(acme) -> User:
    return add_member(acme.org, "dev@acme.test", Role.DEVELOPER)


@pytest.fixture
def viewer(acme) -> User:
    return add_member(acme.org, "viewer@acme.test", Role.VIEWER)


@pytest.fixture
def other_org_and_owner(db):
    return make_workspace("Globex", "owner@globex.test")


@pytest.fixture
def other_org(other_org_and_owner) -> Workspace:
    return other_org_and_owner[0]


@pytest.fixture
def outsider(other_org_and_owner) -> User:
    """The owner of another organization: everything in Acme is 404 to them."""
    return other_org_and_owner[1]


def bearer_client(user: User | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api():
    """`api(user)` is a client sending that user's access token; `api()` sends none."""
    return bearer_client
