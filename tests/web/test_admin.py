from django.contrib import admin as django_admin
from django.contrib.messages import get_messages
from django.db import transaction
from django.urls import reverse

from approvals.models import ApprovalRequest, QueuedEmail, Review, Status
from audit.models import AuditEntry
from conftest import add_member
from flags.models import Environment, Flag, FlagState, Project
from flagship.models import Membership, Organization, Role, User

CHANGELIST = reverse("admin:approvals_approvalrequest_changelist")


def run_action(client, action, approvals):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(approval.pk) for approval in approvals]},
        follow=True,
    )


def label(approval):
    return f"Request {str(approval.pk)[:8]} ({approval.flag.key} in {approval.environment.slug})"


def messages_of(response):
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def test_every_model_is_registered():
    registered = set(django_admin.site._registry)
    for model in (
        Organization,
        User,
        Membership,
        Project,
        Environment,
        Flag,
        FlagState,
        ApprovalRequest,
        Review,
        QueuedEmail,
        AuditEntry,
    ):
        assert model in registered, model


def test_staff_owner_sees_their_organization_in_the_admin(browser_for, owner, propose, other_org):
    propose()
    client = browser_for(owner)

    index = client.get(reverse("admin:index"))
    changelist = client.get(CHANGELIST)

    assert index.status_code == 200
    assert "Approval requests" in index.content.decode()
    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count == 1


def test_queued_emails_are_shown_read_only_for_the_staff_users_organization(
    browser_for, owner, propose, other_org, outsider
):
    approval = propose()
    ApprovalRequest.propose(
        flag=other_org.flag,
        environment=other_org.production,
        requestor=outsider,
        change_type="enable",
    )
    client = browser_for(owner)

    changelist = client.get(reverse("admin:approvals_queuedemail_changelist"))
    add = client.get(reverse("admin:approvals_queuedemail_add"))
    email = QueuedEmail.objects.get(approval_request=approval)
    change_url = reverse("admin:approvals_queuedemail_change", args=[email.pk])
    view = client.get(change_url)
    edit = client.post(change_url, {"event": "rejected", "status": "sent"})
    delete = client.post(reverse("admin:approvals_queuedemail_delete", args=[email.pk]))

    assert changelist.status_code == 200
    assert [email.approval_request_id for email in changelist.context["cl"].result_list] == [
        approval.pk
    ]
    assert add.status_code == 403
    assert view.status_code == 200
    assert (edit.status_code, delete.status_code) == (403, 403)
    assert QueuedEmail.objects.filter(pk=email.pk, event="created", status="pending").exists()


def test_approve_action_applies_the_request_as_the_staff_user(browser_for, acme, owner, propose):
    approval = propose()

    response = run_action(browser_for(owner), "approve_selected", [approval])

    approval.refresh_from_db()
    assert approval.status == Status.APPLIED
    assert approval.reviewer == owner
    state = FlagState.objects.get(flag=acme.flag, environment=acme.production)
    assert (state.enabled, state.percentage_rollout) == (True, 5000)
    assert messages_of(response) == [("success", f"{label(approval)}: approved, now applied.")]
    entry = AuditEntry.objects.get(action="flag.approved_change_applied")
    assert (entry.actor, entry.metadata["source"]) == (owner, "admin")


def test_approve_action_reports_each_row_and_refuses_a_self_review(
    browser_for, acme, owner, propose
):
    by_developer = propose()
    by_owner = propose(requestor=owner, environment=acme.staging)

    response = run_action(browser_for(owner), "approve_selected", [by_developer, by_owner])

    by_developer.refresh_from_db()
    by_owner.refresh_from_db()
    assert by_developer.status == Status.APPLIED
    assert by_owner.status == Status.PENDING
    assert sorted(messages_of(response)) == [
        ("error", f"{label(by_owner)}: cannot review your own request"),
        ("success", f"{label(by_developer)}: approved, now applied."),
    ]


def test_reject_and_cancel_actions_call_the_model_methods(browser_for, owner, propose):
    to_reject, to_cancel, applied = propose(), propose(), propose()
    applied.approve(by=owner)
    client = browser_for(owner)

    rejected = run_action(client, "reject_selected", [to_reject])
    cancelled = run_action(client, "cancel_selected", [to_cancel, applied])

    to_reject.refresh_from_db()
    to_cancel.refresh_from_db()
    assert to_reject.status == Status.REJECTED
    assert to_cancel.status == Status.CANCELLED
    assert messages_of(rejected) == [("success", f"{label(to_reject)}: rejected, now rejected.")]
    assert sorted(messages_of(cancelled)) == [
        ("error", f"{label(applied)}: approval request is no longer open"),
        ("success", f"{label(to_cancel)}: cancelled, now cancelled."),
    ]
    assert AuditEntry.objects.filter(action="approval.rejected", actor=owner).count() == 1


def test_staff_developer_is_refused_by_the_role_check(browser_for, acme, propose):
    developer = add_member(acme.org, "staffdev@acme.test", Role.DEVELOPER, is_staff=True)
    approval = propose()

    response = run_action(browser_for(developer), "approve_selected", [approval])

    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    refusal = "your role (developer) does not allow you to review approval requests"
    assert messages_of(response) == [("error", f"{label(approval)}: {refusal}")]


def test_superuser_without_membership_is_refused_by_the_role_check(browser_for, propose):
    operator = User.objects.create_superuser(email="ops@example.test", password="x" * 12)
    approval = propose()

    response = run_action(browser_for(operator), "approve_selected", [approval])

    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert messages_of(response) == [
        (
            "error",
            f"{label(approval)}: your role (none) does not allow you to review approval requests",
        )
    ]


def test_superuser_of_another_organization_cannot_act_on_its_requests(
    browser_for, outsider, propose
):
    outsider.is_superuser = True
    outsider.save()
    approval = propose()
    client = browser_for(outsider)

    assert client.get(CHANGELIST).context["cl"].result_count == 1, "superusers see every org"
    response = run_action(client, "approve_selected", [approval])

    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.reviews.exists()
    assert messages_of(response) == [("error", f"{label(approval)}: approval request not found")]


def test_staff_see_nothing_of_other_organizations(browser_for, owner, outsider, propose):
    approval = propose()
    client = browser_for(outsider)
    change_url = reverse("admin:approvals_approvalrequest_change", args=[approval.pk])

    assert client.get(CHANGELIST).context["cl"].result_count == 0
    assert client.get(change_url).status_code == 302  # the admin's "does not exist" redirect
    run_action(client, "approve_selected", [approval])
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_approval_requests_cannot_be_added_or_edited_in_the_admin(browser_for, owner, propose):
    approval = propose()
    client = browser_for(owner)
    change_url = reverse("admin:approvals_approvalrequest_change", args=[approval.pk])

    add = client.get(reverse("admin:approvals_approvalrequest_add"))
    page = client.get(change_url)
    post = client.post(change_url, {"status": "applied"})

    assert add.status_code == 403
    assert page.status_code == 200
    assert 'name="status"' not in page.content.decode()
    assert post.status_code == 403
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert django_admin.site._registry[ApprovalRequest].list_editable == ()


def test_audit_entries_are_read_only_in_the_admin(browser_for, owner, propose):
    propose()
    entry = AuditEntry.objects.filter(action="approval.created").get()
    client = browser_for(owner)
    change_url = reverse("admin:audit_auditentry_change", args=[entry.pk])

    assert client.get(reverse("admin:audit_auditentry_changelist")).status_code == 200
    assert client.get(change_url).status_code == 200
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert client.post(change_url, {"action": "forged"}).status_code == 403
    delete_url = reverse("admin:audit_auditentry_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.action == "approval.created"


def state_form(state, **changes):
    data = {
        "enabled": "on" if state.enabled else "",
        "default_value": "null",
        "percentage_rollout": str(state.percentage_rollout),
        "rules": "[]",
        "variants": "[]",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_flag_state_in_a_protected_environment_is_read_only(browser_for, acme, owner):
    state = FlagState.objects.get(flag=acme.flag, environment=acme.production)
    client = browser_for(owner)
    url = reverse("admin:flags_flagstate_change", args=[state.pk])

    page = client.get(url)
    post = client.post(url, state_form(state, enabled="on"))

    assert page.status_code == 200
    assert 'name="enabled"' not in page.content.decode()
    assert post.status_code == 403
    state.refresh_from_db()
    assert state.enabled is False


def test_flag_state_edit_in_an_unprotected_environment_is_audited(browser_for, acme, owner):
    state = FlagState.objects.get(flag=acme.flag, environment=acme.staging)
    url = reverse("admin:flags_flagstate_change", args=[state.pk])

    form = state_form(state, enabled="on", percentage_rollout="2500")
    response = browser_for(owner).post(url, form)

    assert response.status_code == 302
    state.refresh_from_db()
    assert (state.enabled, state.percentage_rollout, state.version) == (True, 2500, 2)
    entry = AuditEntry.objects.get(action="flag_state.updated")
    assert entry.actor == owner
    assert entry.after_state["percentage_rollout"] == 2500
    assert entry.metadata["source"] == "admin"


def test_invalid_flag_state_edit_shows_the_validation_error(browser_for, acme, owner):
    state = FlagState.objects.get(flag=acme.flag, environment=acme.staging)
    url = reverse("admin:flags_flagstate_change", args=[state.pk])

    response = browser_for(owner).post(url, state_form(state, default_value='"text"'), follow=True)

    assert ("error", "default_value: Must be a boolean value, to match the flag's type.") in (
        messages_of(response)
    )
    state.refresh_from_db()
    assert state.version == 1
    assert not AuditEntry.objects.filter(action="flag_state.updated").exists()


def inline_management(prefix="states"):
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_creating_a_flag_in_the_admin_creates_its_states_and_audits(browser_for, acme, owner):
    response = browser_for(owner).post(
        reverse("admin:flags_flag_add"),
        {
            "project": str(acme.project.pk),
            "key": "dark-mode",
            "name": "Dark mode",
            "description": "",
            "flag_type": "boolean",
            "default_value": "false",
            "tags": '["ui"]',
            **inline_management(),
        },
    )

    assert response.status_code == 302
    flag = Flag.objects.get(key="dark-mode")
    assert flag.states.count() == 3
    assert AuditEntry.objects.filter(action="flag.created", resource_id=str(flag.pk)).exists()


def test_creating_a_flag_with_a_mistyped_default_is_refused(browser_for, acme, owner):
    response = browser_for(owner).post(
        reverse("admin:flags_flag_add"),
        {
            "project": str(acme.project.pk),
            "key": "dark-mode",
            "name": "Dark mode",
            "flag_type": "boolean",
            "default_value": '"yes"',
            "tags": "[]",
            **inline_management(),
        },
    )

    assert response.status_code == 200
    assert "Must be a boolean value" in response.content.decode()
    assert not Flag.objects.filter(key="dark-mode").exists()


def test_creating_an_environment_in_the_admin_creates_flag_states(browser_for, acme, owner):
    response = browser_for(owner).post(
        reverse("admin:flags_environment_add"),
        {
            "project": str(acme.project.pk),
            "name": "canary",
            "slug": "canary",
            "color": "#123456",
            "requires_approval": "on",
            "min_approvals": "2",
        },
    )

    assert response.status_code == 302
    canary = Environment.objects.get(slug="canary")
    assert FlagState.objects.filter(environment=canary, flag=acme.flag).exists()
    assert AuditEntry.objects.filter(action="environment.created", actor=owner).exists()


def test_developer_staff_cannot_add_environments(browser_for, acme):
    developer = add_member(acme.org, "staffdev@acme.test", Role.DEVELOPER, is_staff=True)
    response = browser_for(developer).get(reverse("admin:flags_environment_add"))
    assert response.status_code == 403


def test_role_change_in_the_admin_is_audited_and_keeps_an_owner(browser_for, acme, owner, admin):
    client = browser_for(owner)
    admin_membership = admin.membership
    url = reverse("admin:flagship_membership_change", args=[admin_membership.pk])
    own_url = reverse("admin:flagship_membership_change", args=[owner.membership.pk])

    promoted = client.post(url, {"role": "developer"})
    demoted_self = client.post(own_url, {"role": "admin"}, follow=True)

    assert promoted.status_code == 302
    admin_membership.refresh_from_db()
    assert admin_membership.role == Role.DEVELOPER
    assert AuditEntry.objects.filter(action="member.role_changed", actor=owner).count() == 1
    assert ("error", "an organization needs at least one owner") in messages_of(demoted_self)
    owner.membership.refresh_from_db()
    assert owner.membership.role == Role.OWNER


# ----- one transition, three interfaces --------------------------------------------------------

VARYING_METADATA = {"approval_id", "note", "ip", "user_agent", "source"}


def comparable(entry: AuditEntry) -> dict:
    """The parts of an audit entry that must not depend on the interface used."""
    return {
        "action": entry.action,
        "actor_type": entry.actor_type,
        "resource_type": entry.resource_type,
        "before_state": entry.before_state,
        "after_state": entry.after_state,
        "metadata": {k: v for k, v in entry.metadata.items() if k not in VARYING_METADATA},
    }


def test_approving_from_the_page_the_api_and_the_admin_leaves_identical_audit_entries(
    acme, owner, admin, propose, api, browser_for
):
    admin.is_staff = True
    admin.save()

    def approve_via_page(approval):
        browser_for(admin).post(
            reverse("approvals:approve", args=[approval.pk]), {"note": "from the page"}
        )

    def approve_via_api(approval):
        response = api(admin).post(
            f"/v1/approvals/{approval.pk}/review",
            {"action": "approve", "note": "from the API"},
            format="json",
        )
        assert response.status_code == 200, response.json()

    def approve_via_admin(approval):
        run_action(browser_for(admin), "approve_selected", [approval])

    def entries_after(approve) -> list[dict]:
        # Each interface starts from the same flag state: the change is rolled back afterwards.
        with transaction.atomic():
            approval = propose()
            approve(approval)
            approval.refresh_from_db()
            assert approval.status == Status.APPLIED
            entries = AuditEntry.objects.filter(
                metadata__approval_id=str(approval.pk),
                action__in=["approval.approved", "flag.approved_change_applied"],
            ).order_by("created_at", "id")
            sources = {entry.metadata["source"] for entry in entries}
            result = [comparable(entry) for entry in entries], sources
            transaction.set_rollback(True)
        return result

    page, page_sources = entries_after(approve_via_page)
    api_entries, api_sources = entries_after(approve_via_api)
    admin_entries, admin_sources = entries_after(approve_via_admin)

    assert [entry["action"] for entry in page] == [
        "approval.approved",
        "flag.approved_change_applied",
    ]
    assert page == api_entries == admin_entries
    assert (page_sources, api_sources, admin_sources) == ({"web"}, {"api"}, {"admin"})


def test_admin_filters_do_not_name_other_organizations_projects(
    browser_for, owner, other_org, outsider
):
    Project.create_audited(by=outsider, org_id=other_org.org.pk, name="Globex secret", slug="gs")
    client = browser_for(owner)

    for url in (
        reverse("admin:flags_environment_changelist"),
        reverse("admin:flags_flag_changelist"),
        reverse("admin:flags_flagstate_changelist"),
        CHANGELIST,
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert "Globex secret" not in response.content.decode(), url


def test_webhook_admin_never_shows_the_secret_and_other_orgs_are_hidden(
    client, acme, owner, other_org
):
    from audit.models import Webhook, WebhookDelivery

    own = Webhook.objects.create(
        org=acme.org, url="https://hooks.acme.test/a", events=["*"], secret="very-secret-value"
    )
    Webhook.objects.create(
        org=other_org.org, url="https://hooks.globex.test/b", events=["*"], secret="other"
    )
    WebhookDelivery.objects.create(
        webhook=own, event_type="approval.created", event_id=own.pk, payload={}
    )
    client.force_login(owner)
    listing = client.get("/admin/audit/webhook/")
    assert b"hooks.acme.test" in listing.content
    assert b"hooks.globex.test" not in listing.content
    detail = client.get(f"/admin/audit/webhook/{own.pk}/change/")
    assert detail.status_code == 200
    assert b"very-secret-value" not in detail.content
    deliveries = client.get("/admin/audit/webhookdelivery/")
    assert deliveries.status_code == 200
    assert b"approval.created" in deliveries.content


def test_status_totals_are_listed_read_only_for_the_own_org(client, acme, owner, developer):
    from approvals.models import ApprovalRequest, ChangeType

    ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=developer,
        change_type=ChangeType.ENABLE,
    )
    client.force_login(owner)
    response = client.get("/admin/approvals/statustotal/")
    assert response.status_code == 200
    assert b"pending" in response.content
    assert client.get("/admin/approvals/statustotal/add/").status_code == 403
