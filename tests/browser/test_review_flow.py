"""The review flow as a reviewer sees it, in Chromium: queue → request → Approve."""

import re

import pytest
from playwright.sync_api import expect

from approvals.models import ApprovalRequest, ChangeType, Status
from flags.models import Flag, FlagState
from flagship.models import User
from tests.browser.conftest import DEMO_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def request_for(flag_key):
    return ApprovalRequest.objects.get(flag__key=flag_key, status=Status.PENDING)


def open_request(page, flag_key):
    page.goto("/review/")
    page.get_by_role("link", name=flag_key, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(flag_key)


def test_admin_approves_a_request_and_the_flag_state_changes(demo, login, live_server):
    page = login("admin@acme.test")

    open_request(page, "dark-mode")
    enabled = page.locator("tr[data-field=enabled]")
    expect(enabled.locator("td.before")).to_have_text("Off")
    expect(enabled.locator("td.after")).to_have_text("On")
    page.get_by_label("Note").fill("QA signed off; go")
    page.get_by_role("button", name="Approve").click()

    expect(page.locator(".messages")).to_have_text(
        "Approved and applied to dark-mode in production."
    )
    expect(page.locator(".head-status .status")).to_have_text("applied")
    expect(page.locator(".timeline")).to_contain_text("applied the change to the flag state")
    expect(page.locator(".reviews")).to_contain_text("QA signed off; go")

    # The API, logged in as the same person, reads the new production state.
    tokens = page.request.post(
        "/v1/auth/login", data={"email": "admin@acme.test", "password": DEMO_PASSWORD}
    ).json()["tokens"]
    flag = Flag.objects.get(key="dark-mode")
    production = flag.project.environments.get(slug="production")
    state = page.request.get(
        f"/v1/projects/{flag.project_id}/flags/dark-mode/environments/{production.pk}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert state.status == 200
    assert state.json()["enabled"] is True


def test_developer_sees_no_approve_button_on_their_own_request(demo, login):
    page = login("dev@acme.test")

    open_request(page, "dark-mode")

    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Reject")).to_have_count(0)
    expect(page.locator("[data-refusal=review]")).to_have_text("You requested this change.")
    expect(page.get_by_role("button", name="Cancel request")).to_be_visible()


def test_viewer_cannot_approve_or_cancel(demo, login):
    page = login("viewer@acme.test")

    open_request(page, "search-ranking")

    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel request")).to_have_count(0)
    expect(page.locator("[data-refusal=review]")).to_have_text(
        "Your role (viewer) does not allow you to review approval requests"
    )
    assert request_for("search-ranking").status == Status.PENDING


def test_admin_action_approves_one_request_and_refuses_a_self_review(demo, login):
    owner = User.objects.get(email="owner@acme.test")
    new_checkout = Flag.objects.get(key="new-checkout")
    own = ApprovalRequest.propose(
        flag=new_checkout,
        environment=new_checkout.project.environments.get(slug="production"),
        requestor=owner,
        change_type=ChangeType.ENABLE,
    )
    page = login("owner@acme.test")

    page.goto("/admin/approvals/approvalrequest/")
    for flag_key in ("dark-mode", "new-checkout"):
        row = page.locator("#result_list tbody tr", has_text=flag_key)
        row.get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option("approve_selected")
    page.get_by_role("button", name="Run").click()

    dark_mode = ApprovalRequest.objects.get(flag__key="dark-mode")
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Request {str(dark_mode.pk)[:8]} (dark-mode in production): approved, now applied."
    )
    expect(page.locator(".messagelist .error")).to_have_text(
        f"Request {str(own.pk)[:8]} (new-checkout in production): cannot review your own request"
    )
    dark_mode_state = FlagState.objects.get(flag__key="dark-mode", environment__slug="production")
    assert dark_mode_state.enabled is True
    own.refresh_from_db()
    assert own.status == Status.PENDING


def test_screenshots_of_the_queue_and_the_request_page(demo, login, screenshot_dir):
    page = login("admin@acme.test")
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    page.screenshot(path=screenshot_dir / "review-queue.png", full_page=True)

    open_request(page, "search-ranking")
    expect(page.locator("tr[data-field=variants] td.after")).to_contain_text("neural-v2")
    page.screenshot(path=screenshot_dir / "review-request.png", full_page=True)

    phone = login("owner@acme.test", width=390, height=844)
    open_request(phone, "max-cart-items")
    expect(phone.locator("tr[data-field=rules] td.after")).to_contain_text("Beta customers first")
    phone.screenshot(path=screenshot_dir / "review-request-phone.png", full_page=True)

    for name in ("review-queue.png", "review-request.png", "review-request-phone.png"):
        assert (screenshot_dir / name).stat().st_size > 10_000
    assert re.search(r"/review/[0-9a-f-]{36}/$", phone.url)
