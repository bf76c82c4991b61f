from datetime import timedelta

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, Status
from audit.models import AuditEntry
from conftest import PASSWORD
from flags.models import Flag, FlagState
from tests.approvals.helpers import production_state, require_two_approvals


def page_url(approval):
    return reverse("approvals:detail", args=[approval.pk])


def action_url(approval, action):
    return reverse(f"approvals:{action}", args=[approval.pk])


def before_and_after(response) -> dict:
    return {change.field: (change.before, change.after) for change in response.context["changes"]}


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


# ----- login -----------------------------------------------------------------------------------


def test_root_leads_to_the_review_queue(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/review/"


def test_anonymous_visitor_goes_to_login_and_comes_back_after_it(client, admin, propose):
    approval = propose()
    response = client.get(page_url(approval))
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={page_url(approval)}"

    response = client.post(
        "/login/",
        {"username": "admin@acme.test", "password": PASSWORD, "next": page_url(approval)},
    )
    assert response.status_code == 302
    assert response["Location"] == page_url(approval)
    assert client.get(page_url(approval)).status_code == 200


def test_login_with_the_api_users_password_opens_the_queue(client, admin):
    response = client.post("/login/", {"username": "ADMIN@acme.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/review/"


def test_login_with_a_wrong_password_stays_on_the_form_with_an_error(client, admin):
    response = client.post("/login/", {"username": "admin@acme.test", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct email and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_is_refused_with_429_after_repeated_failures(client, admin, settings):
    settings.LOGIN_FAILURES_PER_EMAIL = 2
    for _ in range(2):
        client.post("/login/", {"username": "admin@acme.test", "password": "nope"})
    response = client.post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed login attempts; try again in" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_ends_the_session(browser_for, admin):
    client = browser_for(admin)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/review/").status_code == 302


def test_actions_posted_without_a_session_go_to_login_for_the_request_page(client, propose):
    approval = propose()
    response = client.post(action_url(approval, "approve"))
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={page_url(approval)}"
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


# ----- the queue -------------------------------------------------------------------------------


def test_queue_lists_pending_requests_first_with_the_longest_waiting_on_top(
    browser_for, admin, propose
):
    now = timezone.now()
    old_pending = propose(description="old pending")
    new_pending = propose(description="new pending")
    rejected = propose(description="rejected one")
    rejected.reject(by=admin)
    ApprovalRequest.objects.filter(pk=old_pending.pk).update(created_at=now - timedelta(days=2))
    ApprovalRequest.objects.filter(pk=new_pending.pk).update(created_at=now - timedelta(hours=1))

    response = browser_for(admin).get("/review/")

    rows = list(response.context["page"].object_list)
    assert [row.pk for row in rows] == [old_pending.pk, new_pending.pk, rejected.pk]
    html = response.content.decode()
    assert "new-checkout" in html
    assert "protected" in html
    assert "0 / 1" in html


def test_queue_counts_requests_per_status(browser_for, admin, propose):
    propose()
    propose().reject(by=admin)
    propose().cancel(by=admin)

    response = browser_for(admin).get("/review/")

    counts = {status: count for status, _label, count in response.context["status_counts"]}
    assert counts == {"pending": 1, "approved": 0, "rejected": 1, "applied": 0, "cancelled": 1}
    assert response.context["total_count"] == 3


def test_queue_filters_by_status_project_environment_flag_and_mine(
    browser_for, acme, admin, developer, propose
):
    dark_mode = Flag.create_audited(by=admin, project=acme.project, key="dark-mode", name="Dark")
    mine = propose(requestor=admin)
    staging = propose(environment=acme.staging)
    other_flag = propose(flag=dark_mode, change_type=ChangeType.ENABLE, payload=None)
    rejected = propose()
    rejected.reject(by=admin)
    client = browser_for(admin)

    def listed(**query):
        response = client.get("/review/", query)
        assert response.status_code == 200
        return {row.pk for row in response.context["page"].object_list}

    assert listed(status="rejected") == {rejected.pk}
    assert listed(environment=acme.staging.pk) == {staging.pk}
    assert listed(flag=dark_mode.pk) == {other_flag.pk}
    assert listed(mine="on") == {mine.pk}
    assert listed(project=acme.project.pk) == {mine.pk, staging.pk, other_flag.pk, rejected.pk}
    assert listed(status="pending", flag=acme.flag.pk) == {mine.pk, staging.pk}


def test_queue_ignores_filter_values_from_another_organization(
    browser_for, admin, propose, other_org
):
    approval = propose()
    response = browser_for(admin).get("/review/", {"flag": other_org.flag.pk, "status": "bogus"})
    assert response.status_code == 200
    assert [row.pk for row in response.context["page"].object_list] == [approval.pk]


def test_queue_shows_nothing_of_other_organizations(browser_for, outsider, propose):
    propose()
    response = browser_for(outsider).get("/review/")
    assert list(response.context["page"].object_list) == []
    assert response.context["total_count"] == 0


def test_queue_paginates_25_per_page(browser_for, admin, propose):
    for _ in range(27):
        propose()
    client = browser_for(admin)

    first = client.get("/review/")
    second = client.get("/review/", {"page": 2})
    beyond = client.get("/review/", {"page": "nonsense"})

    assert len(first.context["page"].object_list) == 25
    assert len(second.context["page"].object_list) == 2
    assert 'href="?page=2"' in first.content.decode()
    assert beyond.status_code == 200


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_queue_runs_the_same_number_of_queries_for_3_and_30_requests(
    browser_for, admin, propose, django_assert_max_num_queries
):
    client = browser_for(admin)
    for _ in range(3):
        propose()
    with_3 = queries_for(client, "/review/")
    for _ in range(27):
        propose()
    with_30 = queries_for(client, "/review/")

    assert with_3 == with_30
    with django_assert_max_num_queries(9):
        client.get("/review/")


def test_request_page_runs_the_same_number_of_queries_however_many_requests_and_reviews(
    browser_for, acme, admin, second_admin, owner, propose, django_assert_max_num_queries
):
    acme.production.min_approvals = 3
    acme.production.save()
    client = browser_for(owner)
    approval = propose()
    few = queries_for(client, page_url(approval))
    for _ in range(30):
        propose()
    approval.approve(by=admin, note="one")
    approval.approve(by=second_admin, note="two")
    many = queries_for(client, page_url(approval))

    assert few == many
    with django_assert_max_num_queries(7):
        client.get(page_url(approval))


# ----- the request page ------------------------------------------------------------------------


def test_request_page_shows_the_change_field_by_field(browser_for, admin, propose):
    approval = propose()

    response = browser_for(admin).get(page_url(approval))

    assert response.status_code == 200
    changes = before_and_after(response)
    assert changes == {"enabled": (False, True), "percentage_rollout": (0, 5000)}
    html = response.content.decode()
    assert "Half of the traffic gets the new checkout." in html
    assert "dev@acme.test" in html
    assert "protected" in html
    assert "0%" in html and "50%" in html
    assert 'style="width: 50%"' in html
    assert "requested the change" in html


def test_request_page_renders_variants_and_rules_readably(browser_for, acme, admin, propose):
    approval = propose(
        change_type=ChangeType.UPDATE_STATE,
        payload={
            "variants": [
                {"key": "control", "value": False, "weight": 8000},
                {"key": "treatment", "value": True, "weight": 2000},
            ],
            "rules": [
                {
                    "description": "Beta customers first",
                    "conditions": [{"attribute": "plan", "operator": "in", "values": ["beta"]}],
                    "value": True,
                    "match_type": "all",
                }
            ],
        },
    )

    html = browser_for(admin).get(page_url(approval)).content.decode()

    assert "treatment" in html and "80%" in html and "20%" in html
    assert "Beta customers first" in html
    assert "plan in beta" in html


def test_request_page_of_another_organization_is_404(browser_for, outsider, propose):
    approval = propose()
    client = browser_for(outsider)
    assert client.get(page_url(approval)).status_code == 404
    for action in ("approve", "reject", "cancel"):
        assert client.post(action_url(approval, action)).status_code == 404
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_request_page_of_an_unknown_id_is_404(browser_for, admin):
    assert browser_for(admin).get("/review/not-a-uuid/").status_code == 404
    unknown = "/review/00000000-0000-0000-0000-000000000000/"
    assert browser_for(admin).get(unknown).status_code == 404


def test_admin_approves_from_the_page_and_the_change_is_applied(browser_for, acme, admin, propose):
    approval = propose()

    response = browser_for(admin).post(
        action_url(approval, "approve"), {"note": "Ship it"}, follow=True
    )

    approval.refresh_from_db()
    assert approval.status == Status.APPLIED
    assert approval.review_note == "Ship it"
    state = production_state(acme)
    assert (state.enabled, state.percentage_rollout) == (True, 5000)
    assert messages_of(response) == ["Approved and applied to new-checkout in production."]
    applied = AuditEntry.objects.get(
        action="flag.approved_change_applied", metadata__approval_id=str(approval.pk)
    )
    assert applied.actor == admin
    assert applied.metadata["source"] == "web"
    assert "Ship it" in response.content.decode()


def test_admin_rejects_with_a_note_and_the_state_is_unchanged(browser_for, acme, admin, propose):
    approval = propose()

    response = browser_for(admin).post(
        action_url(approval, "reject"), {"note": "Not before the sale"}, follow=True
    )

    approval.refresh_from_db()
    assert approval.status == Status.REJECTED
    assert approval.review_note == "Not before the sale"
    assert production_state(acme).enabled is False
    assert messages_of(response) == ["Rejected. The flag state was not changed."]


def test_approving_twice_shows_the_models_message(browser_for, admin, propose):
    approval = propose()
    client = browser_for(admin)
    client.post(action_url(approval, "approve"), follow=True)

    response = client.post(action_url(approval, "approve"), follow=True)

    assert messages_of(response) == ["approval request is no longer pending"]
    assert "Approval request is no longer pending" in response.content.decode()


def test_approving_your_own_request_shows_the_models_message(browser_for, admin, propose):
    approval = propose(requestor=admin)

    response = browser_for(admin).post(action_url(approval, "approve"), follow=True)

    assert messages_of(response) == ["cannot review your own request"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_developer_posting_approve_gets_the_role_message(browser_for, acme, developer, propose):
    other = propose(requestor=developer)
    response = browser_for(developer).post(action_url(other, "approve"), follow=True)
    assert messages_of(response) == [
        "your role (developer) does not allow you to review approval requests"
    ]


def test_requestor_sees_no_review_buttons_and_the_reason(browser_for, developer, propose):
    approval = propose()

    response = browser_for(developer).get(page_url(approval))

    html = response.content.decode()
    assert response.context["review_refusal"] == "You requested this change."
    assert "You requested this change." in html
    assert ">Approve</button>" not in html
    assert ">Cancel request</button>" in html


def test_viewer_sees_no_buttons_and_the_role_reason(browser_for, viewer, propose):
    approval = propose()

    html = browser_for(viewer).get(page_url(approval)).content.decode()

    assert "Your role (viewer) does not allow you to review approval requests" in html
    assert "Your role (viewer) does not allow you to cancel approval requests" in html
    assert ">Approve</button>" not in html
    assert ">Cancel request</button>" not in html


def test_reviewer_sees_approve_and_reject(browser_for, admin, propose):
    approval = propose()
    response = browser_for(admin).get(page_url(approval))
    html = response.content.decode()
    assert response.context["review_refusal"] is None
    assert ">Approve</button>" in html and ">Reject</button>" in html


def test_second_reviewer_sees_the_count_and_the_first_reviewer_cannot_review_again(
    browser_for, acme, admin, second_admin, propose
):
    require_two_approvals(acme)
    approval = propose()
    response = browser_for(admin).post(action_url(approval, "approve"), follow=True)

    assert messages_of(response) == ["Approved: 1 of 2 approvals so far."]
    assert response.context["review_refusal"] == "You have already reviewed this request."
    assert browser_for(second_admin).get(page_url(approval)).context["review_refusal"] is None


def test_requestor_cancels_their_request(browser_for, developer, propose):
    approval = propose()

    response = browser_for(developer).post(
        action_url(approval, "cancel"), {"note": "Wrong flag"}, follow=True
    )

    approval.refresh_from_db()
    assert approval.status == Status.CANCELLED
    assert messages_of(response) == ["Cancelled. The flag state was not changed."]
    entry = AuditEntry.objects.get(action="approval.cancelled")
    assert entry.metadata["note"] == "Wrong flag"


def test_developer_cannot_cancel_someone_elses_request(browser_for, admin, developer, propose):
    approval = propose(requestor=admin)
    client = browser_for(developer)

    page = client.get(page_url(approval))
    response = client.post(action_url(approval, "cancel"), follow=True)

    assert page.context["cancel_refusal"] == "developers can cancel only their own requests"
    assert messages_of(response) == ["developers can cancel only their own requests"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_conflicts_are_highlighted_and_approving_needs_ignore_conflicts(
    browser_for, acme, admin, propose
):
    approval = propose(environment=acme.staging)
    FlagState.objects.get(flag=acme.flag, environment=acme.staging).change_directly(
        by=admin, changes={"percentage_rollout": 2500}
    )
    client = browser_for(admin)

    page = client.get(page_url(approval))
    refused = client.post(action_url(approval, "approve"), follow=True)
    approval.refresh_from_db()
    status_after_refusal = approval.status
    applied = client.post(action_url(approval, "approve"), {"ignore_conflicts": "on"}, follow=True)

    assert page.context["conflicts"] == [
        {"field": "percentage_rollout", "base": 0, "current": 2500, "requested": 5000}
    ]
    assert 'class="change-row conflict"' in page.content.decode()
    assert "is now <code>25%</code>, requested <code>50%</code>" in page.content.decode()
    assert messages_of(refused) == [
        "the flag state changed since this request was created; review the conflicts and "
        "approve with ignore_conflicts to apply anyway"
    ]
    assert status_after_refusal == Status.PENDING
    assert messages_of(applied) == ["Approved and applied to new-checkout in staging."]


def test_scheduled_request_shows_its_time_and_the_requestor_can_cancel_it(
    browser_for, admin, developer, propose
):
    when = timezone.now() + timedelta(days=1)
    approval = propose(execution_date=when)
    response = browser_for(admin).post(action_url(approval, "approve"), follow=True)
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert messages_of(response) == [f"Approved; it will be applied at {when:%Y-%m-%d %H:%M} UTC."]

    client = browser_for(developer)
    page = client.get(page_url(approval))
    assert "Scheduled for" in page.content.decode()
    assert f"{when:%Y-%m-%d %H:%M} UTC" in page.content.decode()
    assert page.context["review_refusal"] == "Approved; it will be applied at its scheduled time."
    assert page.context["cancel_refusal"] is None
    client.post(action_url(approval, "cancel"))
    approval.refresh_from_db()
    assert approval.status == Status.CANCELLED


def test_applied_request_shows_the_state_it_replaced_as_before(browser_for, acme, admin, propose):
    approval = propose()
    approval.approve(by=admin)

    response = browser_for(admin).get(page_url(approval))

    changes = before_and_after(response)
    assert changes == {"enabled": (False, True), "percentage_rollout": (0, 5000)}
    assert "Only pending requests are reviewed; this one is applied." in response.content.decode()


def test_timeline_lists_what_happened_with_who_did_it(browser_for, admin, propose):
    approval = propose()
    approval.approve(by=admin, note="Looks right")

    response = browser_for(admin).get(page_url(approval))

    actions = [entry.action for entry in response.context["timeline"]]
    assert actions == ["approval.created", "approval.approved", "flag.approved_change_applied"]
    html = response.content.decode()
    assert "Looks right" in html
    assert "applied the change to the flag state" in html


# ----- CSRF ------------------------------------------------------------------------------------


def test_actions_are_refused_without_a_csrf_token(admin, propose):
    approval = propose()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(action_url(approval, "approve"), {"note": "forged"})

    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_actions_work_with_the_csrf_token_from_the_page(admin, propose):
    approval = propose()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    client.get(page_url(approval))
    token = client.cookies["csrftoken"].value

    client.post(action_url(approval, "approve"), {"csrfmiddlewaretoken": token})

    approval.refresh_from_db()
    assert approval.status == Status.APPLIED


def test_login_form_is_csrf_protected(admin):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    assert response.status_code == 403


def test_status_tabs_keep_the_other_filters(browser_for, acme, admin, propose):
    propose()
    response = browser_for(admin).get("/review/", {"flag": acme.flag.pk, "page": 1})
    assert f'href="?flag={acme.flag.pk}&amp;status=rejected"' in response.content.decode()


def test_an_overlong_note_is_refused_before_reaching_the_model(browser_for, admin, propose):
    approval = propose()

    response = browser_for(admin).post(
        action_url(approval, "approve"), {"note": "x" * 5001}, follow=True
    )

    assert messages_of(response) == ["Ensure this value has at most 5000 characters (it has 5001)."]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_typing_logout_shows_a_page_with_the_button(client, admin):
    client.force_login(admin)
    response = client.get("/logout/")
    assert response.status_code == 200
    assert b'action="/logout/"' in response.content
    assert client.get("/review/").status_code == 200  # still logged in
    client.post("/logout/")
    assert client.get("/review/").status_code == 302


def test_wrong_password_message_says_only_the_password_is_case_sensitive(client, admin):
    response = client.post("/login/", {"username": "admin@acme.test", "password": "nope"})
    assert b"The password is case-sensitive." in response.content
    assert b"both fields" not in response.content
