"""The audited writes check roles and organizations themselves, so the API, the admin and any
other caller get the same answer."""

import pytest

from audit.models import AuditEntry
from flags.models import Environment, Flag, Project
from flagship.errors import NotFound, NotPermitted

pytestmark = pytest.mark.django_db


def test_developer_cannot_create_a_project(acme, developer):
    with pytest.raises(NotPermitted):
        Project.create_audited(by=developer, org_id=acme.org.pk, name="mobile", slug="mobile")
    assert not Project.objects.filter(slug="mobile").exists()


def test_creating_in_another_organization_is_not_found_and_rolled_back(acme, outsider):
    with pytest.raises(NotFound):
        Flag.create_audited(by=outsider, project=acme.project, key="intruder", name="x")
    assert not Flag.objects.filter(key="intruder").exists()
    assert not AuditEntry.objects.filter(
        action="flag.created", after_state__key="intruder"
    ).exists()


def test_updating_another_organizations_environment_is_not_found(acme, outsider):
    with pytest.raises(NotFound):
        acme.production.update_audited(by=outsider, changes={"requires_approval": False})
    acme.production.refresh_from_db()
    assert acme.production.requires_approval is True


def test_developer_edits_a_flag_but_cannot_delete_it(acme, developer, admin):
    acme.flag.update_details(by=developer, changes={"name": "Checkout"})
    with pytest.raises(NotPermitted):
        acme.flag.delete_audited(by=developer)
    acme.flag.delete_audited(by=admin)
    assert not Flag.objects.filter(pk=acme.flag.pk).exists()


def test_protection_change_is_recorded_as_such_whatever_the_caller(acme, admin):
    acme.staging.update_audited(by=admin, changes={"name": "Staging"})
    acme.staging.update_audited(by=admin, changes={"min_approvals": 2})
    actions = list(
        AuditEntry.objects.filter(resource_type="environment", resource_id=str(acme.staging.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["environment.updated", "environment.protection_changed"]


def test_system_bootstrap_creates_without_a_person(acme):
    environment = Environment.create_audited(by=None, project=acme.project, name="qa", slug="qa")
    assert environment.states.count() == 1
