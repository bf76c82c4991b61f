"""Auth, members, roles read per request, error conventions, health and schema."""

import json

import pytest
from django.core.management import call_command

from audit.models import AuditEntry
from conftest import PASSWORD
from flagship.models import Membership, Organization, Role, User
from tests.approvals.helpers import propose

pytestmark = pytest.mark.django_db


class TestLogin:
    def test_login_returns_user_organization_and_tokens(self, api, acme, developer):
        response = api().post(
            "/v1/auth/login", {"email": "dev@acme.test", "password": PASSWORD}, format="json"
        )
        assert response.status_code == 200
        body = response.json()
        assert body["user"]["email"] == "dev@acme.test"
        assert body["user"]["role"] == "developer"
        assert body["organization"]["slug"] == "acme"
        assert set(body["tokens"]) == {"access_token", "refresh_token", "expires_at"}
        assert body["tokens"]["expires_at"].endswith("Z")
        token = body["tokens"]["access_token"]
        me = api().get("/v1/projects", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert me.status_code == 200

    def test_email_is_case_insensitive(self, api, acme, developer):
        response = api().post(
            "/v1/auth/login", {"email": "DEV@acme.test", "password": PASSWORD}, format="json"
        )
        assert response.status_code == 200

    def test_bad_credentials_are_401(self, api, acme, developer):
        response = api().post(
            "/v1/auth/login", {"email": "dev@acme.test", "password": "nope"}, format="json"
        )
        assert response.status_code == 401
        assert response.json() == {"error": "invalid email or password"}

    def test_repeated_failures_are_throttled_with_retry_after(self, api, acme, developer):
        client = api()
        body = {"email": "dev@acme.test", "password": "wrong"}
        statuses = [
            client.post("/v1/auth/login", body, format="json").status_code for _ in range(6)
        ]
        assert statuses[:5] == [401] * 5
        assert statuses[5] == 429
        throttled = client.post(
            "/v1/auth/login", {"email": "dev@acme.test", "password": PASSWORD}, format="json"
        )
        assert throttled.status_code == 429
        assert int(throttled["Retry-After"]) > 0
        assert throttled.json()["error"]

    def test_refresh_rotates_and_refuses_reuse(self, api, acme, developer):
        login = api().post(
            "/v1/auth/login", {"email": "dev@acme.test", "password": PASSWORD}, format="json"
        )
        refresh = login.json()["tokens"]["refresh_token"]
        first = api().post("/v1/auth/refresh", {"refresh_token": refresh}, format="json")
        assert first.status_code == 200
        assert set(first.json()) == {"access_token", "refresh_token", "expires_at"}
        again = api().post("/v1/auth/refresh", {"refresh_token": refresh}, format="json")
        assert again.status_code == 401

    def test_refresh_token_is_not_an_access_token(self, api, acme, developer):
        login = api().post(
            "/v1/auth/login", {"email": "dev@acme.test", "password": PASSWORD}, format="json"
        )
        refresh = login.json()["tokens"]["refresh_token"]
        response = api().get("/v1/projects", HTTP_AUTHORIZATION=f"Bearer {refresh}")
        assert response.status_code == 401


class TestRolesAreReadPerRequest:
    def test_demoted_admin_loses_review_rights_with_the_same_token(
        self, api, acme, developer, admin, owner
    ):
        client = api(admin)
        request = propose(acme, developer)
        Membership.objects.filter(user=admin).update(role=Role.VIEWER)
        response = client.post(
            f"/v1/approvals/{request.pk}/review", {"action": "approve"}, format="json"
        )
        assert response.status_code == 403

    def test_removed_member_token_is_401(self, api, acme, developer, owner):
        client = api(developer)
        assert api(owner).delete(f"/v1/members/{developer.pk}").status_code == 204
        assert client.get("/v1/projects").status_code == 401


class TestMembers:
    def test_admin_adds_member_and_it_is_audited(self, api, acme, admin):
        body = {"email": "new@acme.test", "name": "New", "password": PASSWORD, "role": "developer"}
        response = api(admin).post("/v1/members", body, format="json")
        assert response.status_code == 201
        assert response.json()["role"] == "developer"
        assert "password" not in response.json()
        assert AuditEntry.objects.filter(action="member.added").exists()

    def test_admin_cannot_grant_owner(self, api, acme, admin, developer):
        response = api(admin).patch(f"/v1/members/{developer.pk}", {"role": "owner"}, format="json")
        assert response.status_code == 403
        developer.membership.refresh_from_db()
        assert developer.membership.role == Role.DEVELOPER

    def test_owner_grants_owner_and_role_change_is_audited(self, api, acme, owner, admin):
        response = api(owner).patch(f"/v1/members/{admin.pk}", {"role": "owner"}, format="json")
        assert response.status_code == 200
        entry = AuditEntry.objects.get(action="member.role_changed")
        assert entry.before_state["role"] == "admin"
        assert entry.after_state["role"] == "owner"

    def test_last_owner_cannot_be_demoted_or_removed(self, api, acme, owner):
        client = api(owner)
        demote = client.patch(f"/v1/members/{owner.pk}", {"role": "admin"}, format="json")
        assert demote.status_code == 409
        assert client.delete(f"/v1/members/{owner.pk}").status_code == 409

    def test_developer_cannot_manage_members(self, api, acme, developer, viewer):
        response = api(developer).patch(
            f"/v1/members/{viewer.pk}", {"role": "admin"}, format="json"
        )
        assert response.status_code == 403

    def test_member_of_another_org_is_404(self, api, acme, owner, outsider):
        assert (
            api(owner)
            .patch(f"/v1/members/{outsider.pk}", {"role": "viewer"}, format="json")
            .status_code
            == 404
        )
        assert api(owner).delete(f"/v1/members/{outsider.pk}").status_code == 404

    def test_duplicate_email_and_weak_password_are_400(self, api, acme, admin, developer):
        client = api(admin)
        duplicate = {"email": "dev@acme.test", "password": PASSWORD, "role": "viewer"}
        assert client.post("/v1/members", duplicate, format="json").status_code == 400
        weak = {"email": "weak@acme.test", "password": "123", "role": "viewer"}
        response = client.post("/v1/members", weak, format="json")
        assert response.status_code == 400
        assert "password" in response.json()["fields"]

    def test_list_is_scoped_to_own_org(self, api, acme, owner, viewer, outsider):
        emails = {member["email"] for member in api(viewer).get("/v1/members").json()["data"]}
        assert emails == {"owner@acme.test", "viewer@acme.test"}


class TestConventions:
    def test_unknown_route_is_json_404(self, api, acme, viewer):
        response = api(viewer).get("/v1/nothing/here")
        assert response.status_code == 404
        assert response.json() == {"error": "not found"}

    def test_wrong_method_is_json_405(self, api, acme, viewer):
        response = api(viewer).delete("/v1/approvals")
        assert response.status_code == 405
        assert response.json()["error"]

    def test_malformed_authorization_header_is_401(self, api, acme):
        response = api().get("/v1/projects", HTTP_AUTHORIZATION="Bearer not.a.jwt")
        assert response.status_code == 401
        assert response.json()["error"]

    def test_healthz(self, client):
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"

    def test_schema_and_docs_are_served(self, client):
        schema = client.get("/v1/schema/", HTTP_ACCEPT="application/json")
        assert schema.status_code == 200
        assert "/v1/approvals/{id}/review" in json.loads(schema.content)["paths"]
        docs = client.get("/v1/docs/")
        assert docs.status_code == 200
        assert b"swagger-ui" in docs.content
        assert b"cdn" not in docs.content.lower()


class TestCommands:
    def test_seed_demo_is_idempotent(self, db):
        call_command("seed_demo")
        counts = (User.objects.count(), Organization.objects.count(), AuditEntry.objects.count())
        call_command("seed_demo")
        assert counts == (
            User.objects.count(),
            Organization.objects.count(),
            AuditEntry.objects.count(),
        )
        acme = Organization.objects.get(slug="acme")
        roles = set(acme.memberships.values_list("role", flat=True))
        assert roles == set(Role.values)
        production = acme.projects.get(slug="web").environments.get(slug="production")
        assert production.requires_approval is True
        assert production.approval_requests.filter(status="pending").count() >= 2

    def test_create_org_prints_ids(self, db, capsys):
        call_command(
            "create_org",
            "--name",
            "Initech",
            "--owner-email",
            "boss@initech.test",
            "--owner-password",
            PASSWORD,
        )
        output = json.loads(capsys.readouterr().out)
        org = Organization.objects.get(pk=output["organization_id"])
        assert org.slug == "initech"
        assert set(output["environments"]) == {"development", "staging", "production"}
        owner = User.objects.get(pk=output["owner_id"])
        assert owner.membership.role == Role.OWNER


class TestHostileInput:
    def test_nul_characters_in_json_are_400(self, api, acme, developer):
        url = f"/v1/projects/{acme.project.pk}/flags/{acme.flag.key}/environments/{acme.staging.pk}"
        body = {
            "rules": [
                {"conditions": [{"attribute": "a\u0000", "operator": "equals", "values": ["x"]}]}
            ]
        }
        response = api(developer).put(url, body, format="json")
        assert response.status_code == 400
        assert "NUL" in response.json()["error"]

    def test_nul_character_in_a_path_is_404(self, api, acme, viewer):
        url = f"/v1/projects/{acme.project.pk}/flags/bad%00key"
        assert api(viewer).get(url).status_code == 404

    def test_nul_character_in_a_filter_is_400(self, api, acme, viewer):
        assert api(viewer).get("/v1/audit?action=x%00y").status_code == 400

    def test_json_array_body_is_400(self, api, acme, developer):
        response = api(developer).post("/v1/approvals", [1, 2], format="json")
        assert response.status_code == 400
        assert response.json()["error"]

    def test_writes_to_unknown_routes_are_json_404_not_csrf_pages(self, api, acme, viewer):
        client = api(viewer)
        client.handler.enforce_csrf_checks = True
        for path in ("/v1/nope", "/v1", "/v1/approvals/x/y", "/v1/auth/login/"):
            response = client.post(path, {}, format="json")
            assert response.status_code == 404, path
            assert response.json() == {"error": "not found"}

    def test_deeply_nested_json_is_400(self, api, acme, developer):
        body = '{"payload": ' + "[" * 100_000 + "]" * 100_000 + "}"
        response = api(developer).post("/v1/approvals", body, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"].startswith("JSON")

    def test_oversized_body_is_413(self, api, acme, developer):
        body = '{"description": "' + "x" * 3_000_000 + '"}'
        response = api(developer).post("/v1/approvals", body, content_type="application/json")
        assert response.status_code == 413
        assert response.json() == {"error": "request body is too large"}

    def test_number_beyond_the_safe_range_is_400(self, api, acme, developer):
        url = f"/v1/projects/{acme.project.pk}/flags"
        body = {"key": "big", "name": "Big", "flag_type": "number", "default_value": 10**400}
        response = api(developer).post(url, body, format="json")
        assert response.status_code == 400
        assert "default_value" in response.json()["fields"]

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            (
                "approval_review",
                {"action": "approve", "ignore_conflicts": "yes"},
                "ignore_conflicts",
            ),
            ("approval_review", {"action": "approve", "note": 5}, "note"),
            ("environment", {"min_approvals": "2"}, "min_approvals"),
            ("environment", {"requires_approval": "yes"}, "requires_approval"),
            ("approvals", {"execution_date": "2099-01-01T00:00:00"}, "execution_date"),
        ],
    )
    def test_values_of_the_wrong_json_type_are_400_not_coerced(
        self, api, acme, owner, developer, path, body, field
    ):
        from tests.approvals.helpers import create_body

        request = propose(acme, developer)
        urls = {
            "approval_review": f"/v1/approvals/{request.pk}/review",
            "environment": f"/v1/projects/{acme.project.pk}/environments/{acme.staging.pk}",
            "approvals": "/v1/approvals",
        }
        if path == "approvals":
            body = create_body(acme, **body)
        method = "patch" if path == "environment" else "post"
        response = getattr(api(owner), method)(urls[path], body, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]
        request.refresh_from_db()
        assert request.status == "pending"

    def test_options_is_405(self, api, acme, viewer):
        response = api(viewer).options("/v1/approvals")
        assert response.status_code == 405
        assert response.json()["error"]


class TestForgedTokens:
    """Tokens signed with the server's key but carrying absurd claims (the development key is
    public, so a careless deployment could face these)."""

    def forge(self, **claims):
        import jwt
        from django.conf import settings as django_settings

        payload = {"token_type": "access", "exp": 4_000_000_000, "jti": "x", **claims}
        return jwt.encode(payload, django_settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")

    @pytest.mark.parametrize(
        "claims",
        [
            {"user_id": "not-a-uuid"},
            {"user_id": ["a"]},
            {"user_id": {"a": 1}},
            {"user_id": "00000000-0000-0000-0000-000000000000", "exp": 10**20},
        ],
    )
    def test_absurd_claims_are_401(self, api, acme, claims):
        token = self.forge(**claims)
        response = api().get("/v1/projects", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401
        assert response.json()["error"]
