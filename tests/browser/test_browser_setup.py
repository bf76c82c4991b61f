"""Without Chromium the browser tests skip with an install hint, except under CI, where they
must fail so that a CI run cannot pass without having run them."""

import pytest

from tests.browser.conftest import browser_missing


def test_missing_browser_skips_with_the_install_command(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y chromium"):
        browser_missing("Chromium not found at /usr/bin/chromium")


def test_missing_browser_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        browser_missing("Chromium not found at /usr/bin/chromium")
