"""The one canonical spelling of a login e-mail, shared by storage, the user lookup and the lockout count."""

import unicodedata


def canonical_email(value):
    """NFKC-normalised, trimmed and lower-cased: the form e-mails are stored, looked up and counted in.

    The login lookup is an exact match on this form and django-axes counts failures under it, so
    two spellings that reach the same account are always counted as that one account. (A
    case-insensitive database match would not do: PostgreSQL's UPPER() maps 'ı' to 'I' and 'ſ'
    to 'S', which Python's lower() keeps apart, so "ıris@…" would log in as iris@… while being
    counted as someone else.) NFKC first folds compatibility forms such as 'ſ', 'K' (Kelvin) and
    full-width letters into their plain letters.
    """
    return unicodedata.normalize("NFKC", value or "").strip().lower()
