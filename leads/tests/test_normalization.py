"""Normalising what people type: e-mail, phone (E.164 in the default region) and full names."""

import pytest
from django.core.exceptions import ValidationError

from leads.normalization import normalize_email, normalize_phone, phone_digits, split_full_name


@pytest.mark.parametrize(
    "typed,stored",
    [
        ("ada@analytical.example", "ada@analytical.example"),
        ("  Ada.Lovelace@Analytical.EXAMPLE\n", "ada.lovelace@analytical.example"),
        ("", ""),
        ("   ", ""),
        (None, ""),
    ],
)
def test_email_is_trimmed_and_lower_cased(typed, stored):
    assert normalize_email(typed) == stored


@pytest.mark.parametrize("typed", ["ada", "ada@", "@analytical.example", "ada lovelace@analytical.example"])
def test_a_malformed_email_is_refused(typed):
    with pytest.raises(ValidationError) as excinfo:
        normalize_email(typed)
    assert excinfo.value.code == "invalid_email"


@pytest.mark.parametrize(
    "typed",
    ["(212) 555-0123", "212-555-0123", "212.555.0123", "2125550123", "1 212 555 0123", "+1 (212) 555-0123"],
)
def test_a_us_number_is_stored_in_e164(settings, typed):
    settings.PHONE_DEFAULT_REGION = "US"
    assert normalize_phone(typed) == "+12125550123"


def test_a_number_with_its_country_code_ignores_the_default_region(settings):
    settings.PHONE_DEFAULT_REGION = "US"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


def test_a_local_number_is_read_in_the_default_region(settings):
    settings.PHONE_DEFAULT_REGION = "GB"
    assert normalize_phone("020 7946 0958") == "+442079460958"


def test_an_explicit_region_wins_over_the_setting(settings):
    settings.PHONE_DEFAULT_REGION = "US"
    assert normalize_phone("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize("typed", ["", "  ", None])
def test_no_phone_is_stored_as_empty(typed):
    assert normalize_phone(typed) == ""


@pytest.mark.parametrize(
    "typed",
    [
        "12",  # too short
        "phone me",  # not a number
        "+1 999 555 0123",  # no such area code
        "020 7946 0958",  # a UK number read as a US one
        "1" * 41,  # longer than any number
    ],
)
def test_an_invalid_phone_is_refused(settings, typed):
    settings.PHONE_DEFAULT_REGION = "US"
    with pytest.raises(ValidationError) as excinfo:
        normalize_phone(typed)
    assert excinfo.value.code == "invalid_phone"


@pytest.mark.parametrize(
    "full_name,first,last",
    [
        ("Ada Lovelace", "Ada", "Lovelace"),
        ("Ada King Lovelace", "Ada King", "Lovelace"),
        ("  Grace   Hopper  ", "Grace", "Hopper"),
        ("Cher", "Cher", ""),
        ("", "", ""),
        ("   ", "", ""),
        (None, "", ""),
    ],
)
def test_a_full_name_splits_into_first_and_last(full_name, first, last):
    assert split_full_name(full_name) == (first, last)


@pytest.mark.parametrize(
    "typed,digits", [("(212) 555-0123", "2125550123"), ("+1", "1"), ("ada", ""), (None, "")]
)
def test_phone_digits_keeps_only_digits(typed, digits):
    assert phone_digits(typed) == digits
