"""Turning what people type into the canonical e-mail, phone and name that leads store."""

import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def normalize_email(raw):
    """Trimmed and lower-cased, or "" when empty; raises ValidationError when malformed."""
    value = (raw or "").strip().lower()
    if not value:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError("Enter a valid e-mail address.", code="invalid_email") from None
    return value


def normalize_phone(raw, region=None):
    """E.164 (+15555550123), or "" when empty; raises ValidationError when it is not a number."""
    value = (raw or "").strip()
    if not value:
        return ""
    if len(value) > 40:
        raise ValidationError("That phone number is too long.", code="invalid_phone")
    try:
        number = phonenumbers.parse(value, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationError("Enter a valid phone number.", code="invalid_phone") from None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise ValidationError(
            "Enter a valid phone number, with the country code if it is not local.",
            code="invalid_phone",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def split_full_name(full_name):
    """'Ada King Lovelace' -> ('Ada King', 'Lovelace'); a single word is a first name."""
    words = (full_name or "").split()
    if not words:
        return "", ""
    if len(words) == 1:
        return words[0], ""
    return " ".join(words[:-1]), words[-1]


def phone_digits(raw):
    """Only the digits, for matching a typed fragment against stored E.164 numbers."""
    return re.sub(r"\D", "", raw or "")
