"""Production settings: secure defaults under DEBUG=0, env overrides, the refused development key,
`check --deploy`, and the security headers (CSP, nosniff, referrer policy, framing) on every response.

Settings are read once per process, so the production-mode tests start a fresh Python with the
environment they describe; the header tests run in-process over the test client (plain http,
DEBUG unset: not production mode).
"""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from leads.tests.factories import DEFAULT_PASSWORD, LeadFactory

ROOT = settings.BASE_DIR
# Every variable these tests set, cleared first so the machine's own environment cannot leak in.
OURS = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "CSP_REPORT_ONLY",
    "CSP_REPORT_URI",
    "DJANGO_SETTINGS_MODULE",
    # The browser tests' conftest sets it for its own process; a deployment must not (async.E001).
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "leadboard.example",
}
SHOWN = [
    "PRODUCTION",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "CONTENT_SECURITY_POLICY",
    "CONTENT_SECURITY_POLICY_REPORT_ONLY",
]
EXPECTED_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}


def run(args, **env):
    """Run `python <args>` in the checkout with only the given settings variables set."""
    environment = {key: value for key, value in os.environ.items() if key not in OURS}
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def settings_under(**env):
    """The settings module's values (those in SHOWN) as a fresh process with this environment sees them."""
    code = f"import json, config.settings as s; print(json.dumps({{n: getattr(s, n) for n in {SHOWN!r}}}))"
    result = run(["-c", code], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def parse_csp(header):
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


# --- production mode and its overrides --------------------------------------------------------


def test_production_mode_turns_every_secure_setting_on():
    values = settings_under(**PRODUCTION_ENV)
    assert values["PRODUCTION"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None  # only behind a proxy, which says so
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"


@pytest.mark.parametrize("debug", [None, "1"], ids=["tests: DEBUG unset", "make run: DEBUG=1"])
def test_without_debug_set_false_http_keeps_working(debug):
    values = settings_under(**({"DEBUG": debug} if debug else {}))
    assert values["PRODUCTION"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    # The policy and the other headers apply in every mode.
    assert values["CONTENT_SECURITY_POLICY"]["DIRECTIVES"] == EXPECTED_CSP
    assert values["X_FRAME_OPTIONS"] == "DENY"


def test_each_secure_setting_can_be_overridden_from_the_environment():
    values = settings_under(
        **PRODUCTION_ENV,
        SECURE_SSL_REDIRECT="0",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        CSRF_COOKIE_HTTPONLY="0",
        SECURE_REFERRER_POLICY="strict-origin-when-cross-origin",
        X_FRAME_OPTIONS="SAMEORIGIN",
        CSP_REPORT_ONLY="1",
        CSP_REPORT_URI="https://reports.example/csp",
    )
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_HSTS_SECONDS"] == 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_HTTPONLY"] is False
    assert values["SECURE_REFERRER_POLICY"] == "strict-origin-when-cross-origin"
    assert values["X_FRAME_OPTIONS"] == "SAMEORIGIN"
    # Report-only: the same policy, sent so browsers report and block nothing.
    assert values["CONTENT_SECURITY_POLICY"] is None
    assert values["CONTENT_SECURITY_POLICY_REPORT_ONLY"]["DIRECTIVES"] == {
        **EXPECTED_CSP,
        "report-uri": "https://reports.example/csp",
    }


def test_a_malformed_proxy_header_setting_is_refused():
    result = run(["-c", "import config.settings"], SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be a header and a value" in result.stderr


@pytest.mark.parametrize("secret_key", [None, "leadboard-development-key-not-for-production"])
def test_production_mode_refuses_to_start_with_the_development_key(secret_key):
    env = {"DEBUG": "false", "ALLOWED_HOSTS": "leadboard.example"}
    if secret_key:
        env["SECRET_KEY"] = secret_key
    result = run(["manage.py", "check"], **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DEBUG=0 (production mode) with the public development SECRET_KEY" in result.stderr


def test_check_deploy_passes_with_production_values():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_when_a_secure_setting_is_turned_off():
    """The check above can fail: switching HSTS off in production is reported."""
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION_ENV,
        SECURE_HSTS_SECONDS="0",
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr


# --- in-process: headers, redirect, cookies ----------------------------------------------------


def assert_security_headers(response):
    assert parse_csp(response["Content-Security-Policy"]) == EXPECTED_CSP
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_pages_carry_the_security_headers(manager_client, django_assert_max_num_queries):
    LeadFactory()
    with django_assert_max_num_queries(30):
        response = manager_client.get(reverse("leads:board"))
    assert response.status_code == 200
    assert_security_headers(response)


@pytest.mark.django_db
def test_the_login_page_and_the_capture_form_carry_the_security_headers(
    client, django_assert_max_num_queries
):
    for url in [reverse("login"), reverse("leads:apply")]:
        with django_assert_max_num_queries(10):
            response = client.get(url)
        assert response.status_code == 200
        assert_security_headers(response)


@pytest.mark.django_db
def test_api_responses_carry_the_security_headers(manager_client, django_assert_max_num_queries):
    LeadFactory()
    with django_assert_max_num_queries(20):
        response = manager_client.get("/api/leads/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert_security_headers(response)
    with django_assert_max_num_queries(5):
        anonymous = Client().get("/api/leads/", HTTP_ACCEPT="application/json")
    assert anonymous.status_code == 401
    assert_security_headers(anonymous)


@pytest.mark.django_db
def test_the_api_docs_need_no_exception_to_the_policy(manager_client, django_assert_max_num_queries):
    """Swagger UI's start-up script is a same-origin file (?script), not inline, under the full policy."""
    with django_assert_max_num_queries(10):
        page = manager_client.get(reverse("api:docs"))
    assert page.status_code == 200
    assert_security_headers(page)
    html = page.content.decode()
    assert "<style" not in html
    assert "<script>" not in html
    assert 'src="/api/docs/?script="' in html
    with django_assert_max_num_queries(10):
        script = manager_client.get(reverse("api:docs") + "?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


@pytest.mark.django_db
def test_only_the_browsable_api_pages_allow_inline_styles(manager_client, django_assert_max_num_queries):
    """DRF's HTML templates use <style> and style="..."; scripts stay 'self' there, JSON keeps it all."""
    with django_assert_max_num_queries(20):
        html = manager_client.get("/api/stages/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200
    assert html["Content-Type"].startswith("text/html")
    assert parse_csp(html["Content-Security-Policy"]) == {
        **EXPECTED_CSP,
        "style-src": ["'self'", "'unsafe-inline'"],
    }
    with django_assert_max_num_queries(20):
        data = manager_client.get("/api/stages/", HTTP_ACCEPT="application/json")
    assert parse_csp(data["Content-Security-Policy"]) == EXPECTED_CSP


@pytest.mark.django_db
def test_report_only_mode_sends_the_policy_without_enforcing_it(
    settings, client, django_assert_max_num_queries
):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = settings.CONTENT_SECURITY_POLICY
    settings.CONTENT_SECURITY_POLICY = None
    with django_assert_max_num_queries(10):
        response = client.get(reverse("login"))
    assert "Content-Security-Policy" not in response
    assert parse_csp(response["Content-Security-Policy-Report-Only"]) == EXPECTED_CSP


@pytest.mark.django_db
def test_production_values_redirect_to_https_and_secure_the_cookies(
    settings, manager, django_assert_max_num_queries
):
    """What DEBUG=0 and SECURE_PROXY_SSL_HEADER do to requests behind a TLS-terminating proxy."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    client = Client()  # a fresh handler, so SecurityMiddleware reads the settings above

    with django_assert_max_num_queries(0):
        plain = client.get("/accounts/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/accounts/login/"

    with django_assert_max_num_queries(10):
        page = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    csrf = page.cookies["csrftoken"]
    assert csrf["secure"] and csrf["httponly"]

    # A login writes the session, last_login and django-axes' records.
    with django_assert_max_num_queries(25):
        login = client.post(
            "/accounts/login/",
            {"username": manager.email, "password": DEFAULT_PASSWORD, "csrfmiddlewaretoken": csrf.value},
            HTTP_X_FORWARDED_PROTO="https",
        )
    assert login.status_code == 302, login.content.decode()[:500]
    session = login.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] and session["httponly"]
