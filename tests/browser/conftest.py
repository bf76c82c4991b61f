"""A real Chromium driven by Playwright against pytest-django's live server.

Debian's Chromium at /usr/bin/chromium is used (`playwright install` cannot download browsers
here). Without it the browser tests skip, telling how to install it; under CI (the CI variable
set) they fail instead, so a CI run cannot pass without having run them.
"""

import io
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DEMO_PASSWORD = "flagship-demo"


def browser_missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)")
    pytest.skip(f"{reason}; install it with `apt-get install -y chromium` to run the browser tests")


@pytest.fixture(scope="session")
def chromium():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        browser_missing(f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_missing("Playwright is not installed (pip install -r requirements.txt)")
    # Playwright's sync API runs an event loop in this thread; the database calls the tests make
    # beside it are still synchronous, so Django's async-safety check is lifted for them only.
    with (
        pytest.MonkeyPatch.context() as patch,
        sync_playwright() as playwright,
    ):
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@pytest.fixture
def screenshot_dir(tmp_path):
    """docs/screenshots with UPDATE_SCREENSHOTS=1, else a temporary folder, so that ordinary test
    runs do not rewrite the committed pictures."""
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


@pytest.fixture
def demo(transactional_db):
    """The seed_demo organization: owner/admin/dev/viewer@acme.test and pending requests."""
    call_command("seed_demo", stdout=io.StringIO())


@pytest.fixture
def new_page(chromium, live_server):
    """`new_page(width, height)` opens a page on the live server; closed after the test."""
    contexts = []

    def make(width=1280, height=900):
        context = chromium.new_context(
            base_url=live_server.url, viewport={"width": width, "height": height}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def login(new_page):
    """`login(email)` returns a page logged in through the login form, on the review queue."""

    def make(email, **viewport):
        page = new_page(**viewport)
        page.goto("/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/review/")
        return page

    return make
