"""Security headers on pages and API responses, and a production configuration that passes
`manage.py check --deploy` without warnings."""

import os
import secrets
import subprocess
import sys

import pytest

from tests.servers import BASE_DIR


def csp_directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("path", ["/admin/login/", "/v1/approvals", "/healthz"])
def test_responses_carry_the_security_headers(client, db, path):
    response = client.get(path)

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response


def test_pages_allow_only_own_scripts_and_no_inline_script(client, db):
    directives = csp_directives(client.get("/admin/login/"))

    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["style-src"]


def test_api_docs_load_their_script_from_a_file_under_the_policy(client, db):
    page = client.get("/v1/docs/")

    assert page.status_code == 200
    directives = csp_directives(page)
    assert directives["script-src"] == ["'self'"]
    html = page.content.decode()
    # Every <script> has a src (no inline code), and all of them are served by this site.
    assert html.count("<script") == html.count("<script src=")
    init_script = client.get("/v1/docs/?script=")
    assert init_script.status_code == 200
    assert init_script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in init_script.content.decode()


def test_production_settings_pass_the_deploy_check_without_warnings():
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "flags.example.com",
        # Production sends its notifications through SMTP; the console backend fails the check.
        "EMAIL_HOST": "smtp.example.com",
    }
    # Settings a developer's shell (or the browser tests' session) may carry.
    for name in (
        "HTTPS",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    ):
        env.pop(name, None)

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_refuse_the_development_secret_key():
    env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "flags.example.com"}
    env.pop("SECRET_KEY", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_https_redirect_spares_the_health_check(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz").status_code == 200
    redirected = client.get("/admin/login/")
    assert redirected.status_code == 301
    assert redirected["Location"].startswith("https://")
