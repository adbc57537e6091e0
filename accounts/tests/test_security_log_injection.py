"""The security log writes what clients typed safely: one event, one line, no password, bounded length.

Regression: fields were logged raw with %s, so a newline in the typed e-mail forged a log line.
"""

import logging
import re

import pytest
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.security_log import MAX_FIELD_CHARS, describe_attempted, log_event, printable

pytestmark = pytest.mark.django_db

FORGED = "x@example.com ip=1.2.3.4\nlogin: user 1 <admin@example.com> POST /accounts/login/ ip=10.0.0.1"


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="leadboard.security")

    def messages(event=None):
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "leadboard.security" and event in (None, r.security_event)
        ]

    return messages


@pytest.mark.parametrize("door", ["page", "api"])
def test_a_newline_in_the_typed_email_cannot_forge_a_line(door, client, lines, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        if door == "api":
            APIClient().post("/api/auth/token/", {"email": FORGED, "password": "p"}, format="json")
        else:
            client.post(reverse("login"), {"username": FORGED, "password": "p"})

    (line,) = lines("login_failed")
    assert "\n" not in "".join(lines()) and "\r" not in "".join(lines())
    assert line.startswith("login_failed: anonymous POST ")
    # Quoted and escaped: the forged "ip=" sits inside the attempted value, the real IP after it.
    assert "attempted='x@example.com ip=1.2.3.4\\\\nlogin: user 1" in line
    assert re.search(r"' ip=127\.0\.0\.1 at=\S+$", line)


@pytest.mark.parametrize("typed", ["Hunter2-secret", "correct horse battery staple"])
def test_a_value_without_at_sign_is_not_logged_it_may_be_a_password(typed, lines):
    APIClient().post("/api/auth/token/", {"email": typed, "password": "p"}, format="json")

    text = "\n".join(lines())
    assert "attempted='<not an e-mail>'" in text
    assert typed.lower() not in text.lower()


def test_a_lockout_line_hides_a_password_typed_as_the_email_too(client, settings, lines):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(3):
        client.post(reverse("login"), {"username": "Hunter2-secret", "password": "p"})

    text = "\n".join(lines())
    assert "login_locked_out" in text
    assert "hunter2" not in text.lower()


def test_control_and_invisible_characters_are_escaped_and_long_values_capped(lines):
    request = RequestFactory().post("/accounts/login/%0D%0Afake:%20line")
    log_event(
        "login_failed",
        request=request,
        reason="why\x1b[31m",
        attempted="a\u2028b\u202e@example.com" + "x" * 1000,
        tokens=3,
    )

    (line,) = lines()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\u2028" not in line and "\u202e" not in line
    assert "\\u2028" in line and "\\u202e" in line
    assert "/accounts/login/\\r\\nfake:%20line" in line
    assert " tokens=3 " in line
    assert len(line) < 2 * MAX_FIELD_CHARS + 200


def test_helpers():
    assert printable("a\nb") == "a\\nb"
    assert printable("x" * 500) == "x" * MAX_FIELD_CHARS + "…"
    assert describe_attempted("sales@test.example") == "sales@test.example"
    assert describe_attempted("Hunter2") == "<not an e-mail>"
    assert describe_attempted(None) == "-"
