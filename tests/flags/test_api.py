"""Projects, environments, flags and flag state (SPEC §5, §8) through HTTP."""

import pytest

from audit.models import AuditEntry
from flags.models import Environment, Flag, FlagState, Project

pytestmark = pytest.mark.django_db


def state_url(workspace, environment, key=None):
    return (
        f"/v1/projects/{workspace.project.pk}/flags/{key or workspace.flag.key}"
        f"/environments/{environment.pk}"
    )


class TestProjects:
    def test_admin_creates_project_with_derived_slug(self, api, acme, admin):
        response = api(admin).post("/v1/projects", {"name": "Mobile App"}, format="json")
        assert response.status_code == 201
        assert response.json()["slug"] == "mobile-app"
        assert AuditEntry.objects.filter(action="project.created", actor=admin).exists()

    def test_developer_cannot_create_project(self, api, acme, developer):
        response = api(developer).post("/v1/projects", {"name": "x"}, format="json")
        assert response.status_code == 403

    def test_duplicate_slug_is_400(self, api, acme, admin):
        response = api(admin).post("/v1/projects", {"name": "web"}, format="json")
        assert response.status_code == 400
        assert "slug" in response.json()["fields"]

    def test_patch_and_delete_are_audited(self, api, acme, owner):
        client = api(owner)
        url = f"/v1/projects/{acme.project.pk}"
        assert client.patch(url, {"name": "Website"}, format="json").json()["name"] == "Website"
        entry = AuditEntry.objects.get(action="project.updated")
        assert entry.before_state["name"] == "web"
        assert entry.after_state["name"] == "Website"
        assert client.delete(url).status_code == 204
        assert not Project.objects.filter(pk=acme.project.pk).exists()
        assert AuditEntry.objects.filter(action="project.deleted").exists()

    def test_other_orgs_project_is_404(self, api, acme, outsider):
        assert api(outsider).get(f"/v1/projects/{acme.project.pk}").status_code == 404
        assert api(outsider).delete(f"/v1/projects/{acme.project.pk}").status_code == 404
        assert Project.objects.filter(pk=acme.project.pk).exists()

    def test_put_is_not_allowed_and_answers_json(self, api, acme, owner):
        response = api(owner).put(f"/v1/projects/{acme.project.pk}", {}, format="json")
        assert response.status_code == 405
        assert response.json()["error"]


class TestEnvironments:
    def test_new_environment_gets_a_state_for_every_flag(self, api, acme, admin):
        url = f"/v1/projects/{acme.project.pk}/environments"
        response = api(admin).post(url, {"name": "qa", "color": "#123456"}, format="json")
        assert response.status_code == 201
        environment = Environment.objects.get(pk=response.json()["id"])
        state = FlagState.objects.get(flag=acme.flag, environment=environment)
        assert state.enabled is False
        assert state.percentage_rollout == 0

    def test_protection_change_is_admin_only_and_audited(self, api, acme, admin, developer):
        url = f"/v1/projects/{acme.project.pk}/environments/{acme.staging.pk}"
        body = {"requires_approval": True, "min_approvals": 2}
        assert api(developer).patch(url, body, format="json").status_code == 403
        response = api(admin).patch(url, body, format="json")
        assert response.status_code == 200
        assert response.json()["requires_approval"] is True
        entry = AuditEntry.objects.get(action="environment.protection_changed")
        assert entry.before_state["requires_approval"] is False
        assert entry.after_state["min_approvals"] == 2

    @pytest.mark.parametrize("value", [0, 11, "two", -1])
    def test_min_approvals_outside_1_to_10_is_400(self, api, acme, admin, value):
        url = f"/v1/projects/{acme.project.pk}/environments/{acme.staging.pk}"
        response = api(admin).patch(url, {"min_approvals": value}, format="json")
        assert response.status_code == 400
        assert "min_approvals" in response.json()["fields"]

    def test_bad_color_is_400(self, api, acme, admin):
        url = f"/v1/projects/{acme.project.pk}/environments"
        response = api(admin).post(url, {"name": "qa", "color": "red"}, format="json")
        assert response.status_code == 400

    def test_environments_of_a_foreign_project_are_404(self, api, acme, outsider):
        url = f"/v1/projects/{acme.project.pk}/environments"
        assert api(outsider).get(url).status_code == 404


class TestFlags:
    def test_developer_creates_flag_with_state_in_every_environment(self, api, acme, developer):
        url = f"/v1/projects/{acme.project.pk}/flags"
        body = {
            "key": "beta.banner",
            "name": "Beta banner",
            "flag_type": "string",
            "default_value": "off",
            "tags": ["ui"],
        }
        response = api(developer).post(url, body, format="json")
        assert response.status_code == 201
        flag = Flag.objects.get(pk=response.json()["id"])
        assert flag.states.count() == 3
        state = api(developer).get(state_url(acme, acme.production, key="beta.banner")).json()
        assert state["enabled"] is False
        assert state["percentage_rollout"] == 0
        assert state["version"] == 1

    @pytest.mark.parametrize("key", ["Bad", "-lead", "", "a" * 101, "spa ce", "ü"])
    def test_invalid_key_is_400(self, api, acme, developer, key):
        url = f"/v1/projects/{acme.project.pk}/flags"
        response = api(developer).post(url, {"key": key, "name": "x"}, format="json")
        assert response.status_code == 400
        assert "key" in response.json()["fields"]

    def test_duplicate_key_is_400(self, api, acme, developer):
        url = f"/v1/projects/{acme.project.pk}/flags"
        response = api(developer).post(url, {"key": "new-checkout", "name": "x"}, format="json")
        assert response.status_code == 400

    def test_default_value_must_match_type(self, api, acme, developer):
        url = f"/v1/projects/{acme.project.pk}/flags"
        body = {"key": "limit", "name": "Limit", "flag_type": "number", "default_value": "ten"}
        response = api(developer).post(url, body, format="json")
        assert response.status_code == 400
        assert "default_value" in response.json()["fields"]

    def test_viewer_cannot_create(self, api, acme, viewer):
        url = f"/v1/projects/{acme.project.pk}/flags"
        response = api(viewer).post(url, {"key": "x", "name": "x"}, format="json")
        assert response.status_code == 403

    def test_patch_name_is_audited_and_key_is_read_only(self, api, acme, developer):
        url = f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}"
        response = api(developer).patch(url, {"name": "Checkout v2"}, format="json")
        assert response.status_code == 200
        assert AuditEntry.objects.filter(action="flag.updated").exists()
        renamed = api(developer).patch(url, {"key": "other"}, format="json")
        assert renamed.status_code == 400

    def test_default_value_change_refused_while_an_environment_is_protected(
        self, api, acme, developer
    ):
        url = f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}"
        response = api(developer).patch(url, {"default_value": True}, format="json")
        assert response.status_code == 409
        assert "production" in response.json()["error"]
        acme.flag.refresh_from_db()
        assert acme.flag.default_value is False

    def test_developer_cannot_delete_admin_can(self, api, acme, developer, admin):
        url = f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}"
        assert api(developer).delete(url).status_code == 403
        assert api(admin).delete(url).status_code == 204
        assert AuditEntry.objects.filter(action="flag.deleted").exists()

    def test_unknown_flag_is_404(self, api, acme, viewer):
        url = f"/v1/projects/{acme.project.pk}/flags/nope"
        assert api(viewer).get(url).status_code == 404


class TestFlagState:
    def test_put_merges_bumps_version_and_audits(self, api, acme, developer):
        client = api(developer)
        first = client.put(state_url(acme, acme.staging), {"enabled": True}, format="json")
        assert first.status_code == 200
        second = client.put(
            state_url(acme, acme.staging), {"percentage_rollout": 2500}, format="json"
        )
        body = second.json()
        assert body["enabled"] is True  # kept from the first write
        assert body["percentage_rollout"] == 2500
        assert body["version"] == 3
        entries = AuditEntry.objects.filter(action="flag_state.updated").order_by("created_at")
        assert [entry.after_state["version"] for entry in entries] == [2, 3]
        assert entries[1].before_state["percentage_rollout"] == 0

    def test_put_in_protected_environment_is_409_and_changes_nothing(self, api, acme, owner):
        response = api(owner).put(
            state_url(acme, acme.production), {"enabled": True}, format="json"
        )
        assert response.status_code == 409
        assert response.json() == {
            "error": "environment 'production' requires an approval request for flag state changes"
        }
        state = FlagState.objects.get(flag=acme.flag, environment=acme.production)
        assert state.enabled is False
        assert state.version == 1

    def test_stale_version_is_409(self, api, acme, developer):
        client = api(developer)
        client.put(state_url(acme, acme.staging), {"enabled": True}, format="json")
        stale = client.put(
            state_url(acme, acme.staging), {"enabled": False, "version": 1}, format="json"
        )
        assert stale.status_code == 409
        fresh = client.put(
            state_url(acme, acme.staging), {"enabled": False, "version": 2}, format="json"
        )
        assert fresh.status_code == 200

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"enabled": "yes"}, "enabled"),
            ({"percentage_rollout": 10001}, "percentage_rollout"),
            ({"percentage_rollout": True}, "percentage_rollout"),
            ({"variants": [{"key": "a", "value": True, "weight": 5000}]}, "variants"),
            ({"variants": "nope"}, "variants"),
            ({"rules": [{"conditions": []}]}, "rules.0.conditions"),
            (
                {
                    "rules": [
                        {"conditions": [{"attribute": "a", "operator": "regex", "values": ["("]}]}
                    ]
                },
                "rules.0.conditions.0.values",
            ),
            ({"default_value": 3}, "default_value"),
            ({"bogus": 1}, "bogus"),
        ],
    )
    def test_invalid_state_is_400_and_changes_nothing(self, api, acme, developer, body, field):
        response = api(developer).put(state_url(acme, acme.staging), body, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]
        state = FlagState.objects.get(flag=acme.flag, environment=acme.staging)
        assert state.version == 1

    def test_empty_put_is_400(self, api, acme, developer):
        response = api(developer).put(state_url(acme, acme.staging), {}, format="json")
        assert response.status_code == 400

    def test_viewer_cannot_put(self, api, acme, viewer):
        response = api(viewer).put(state_url(acme, acme.staging), {"enabled": True}, format="json")
        assert response.status_code == 403

    def test_foreign_org_state_is_404(self, api, acme, outsider):
        assert api(outsider).get(state_url(acme, acme.staging)).status_code == 404
        response = api(outsider).put(
            state_url(acme, acme.staging), {"enabled": True}, format="json"
        )
        assert response.status_code == 404

    def test_valid_variants_and_rules_are_stored(self, api, acme, developer):
        body = {
            "variants": [
                {"key": "on", "value": True, "weight": 2500},
                {"key": "off", "value": False, "weight": 7500},
            ],
            "rules": [
                {
                    "id": "eu",
                    "priority": 1,
                    "description": "EU users",
                    "conditions": [{"attribute": "country", "operator": "in", "values": ["DE"]}],
                    "percentage": 5000,
                    "value": True,
                    "match_type": "any",
                }
            ],
        }
        response = api(developer).put(state_url(acme, acme.staging), body, format="json")
        assert response.status_code == 200
        assert response.json()["variants"] == body["variants"]
        assert response.json()["rules"] == body["rules"]
