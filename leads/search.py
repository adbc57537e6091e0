"""Lead search as SQL: a case-insensitive "contains" that trigram indexes serve on PostgreSQL; same on SQLite.

Django's `icontains` compiles to `UPPER(col::text) LIKE UPPER(%s)` on PostgreSQL, which no index on
the bare column can serve, and on SQLite to a LIKE that folds ASCII letters only ("JOSÉ" would not
match "josé" there while it does on PostgreSQL). So search uses its own lookups:

- PostgreSQL: `col ILIKE '%term%'`, the user's `%`, `_` and `\\` escaped, which the gin_trgm_ops
  indexes of migration 0006 serve. ILIKE compares lower(col) with lower(pattern).
- SQLite: `instr(leadboard_lower(col), lower(term)) > 0`, where leadboard_lower is Python's
  str.lower registered on every SQLite connection (see LeadsConfig.ready), so accents and any
  letter fold as PostgreSQL folds them, and `%`/`_` are plain characters with nothing to escape.

A trigram index needs 3 characters: '%ab%' gives pg_trgm no trigram, so it cannot narrow the search
and the database reads every lead. Hence the rule for words of 1 or 2 characters:
- beside a longer word ("Smith & Co", "Bank of America", "J Smith") they match anywhere, as
  every word does: the longer word's indexed condition finds the candidates, the short one
  only filters them;
- when every word is that short ("Li", "J"), each matches the *start* of a first or last name,
  e-mail or company ("Li" finds Li, Lisa and Lime Systems, not Eli), which the indexes serve
  through their word-start trigrams ("  l", " li") and which is what two typed letters mean.
"""

import re

from django.db.models import F, Lookup, Q
from django.db.models.lookups import IContains, IEndsWith, IExact, IStartsWith

from leads.normalization import phone_digits

# A term whose words are all shorter than this matches the start of fields (see above).
MIN_CONTAINS_LENGTH = 3
# At most this many words of a term are used: each adds one OR of five indexed conditions.
MAX_WORDS = 8
# The columns a word is looked for in; phones are matched separately, by their digits.
TEXT_FIELDS = ("first_name", "last_name", "email", "company")
SQLITE_LOWER = "leadboard_lower"


class _FoldedMatch(Lookup):
    """`lhs` contains (or starts with, ends with, equals) the string `rhs`, whatever the case of either."""

    prepare_rhs = False
    # Wildcards around the escaped term in the PostgreSQL pattern.
    before, after = "%", "%"
    # Another database: Django's own lookup with the same meaning (case folding is the backend's).
    fallback = IContains

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        pattern = self.before + connection.ops.prep_for_like_query(self.rhs) + self.after
        # LIKE's default escape character is the backslash prep_for_like_query escapes with.
        return f"{lhs} ILIKE %s", (*lhs_params, pattern)

    def as_sqlite(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        folded, term = f"{SQLITE_LOWER}({lhs})", self.rhs.lower()
        if self.before and self.after:
            return f"instr({folded}, %s) > 0", (*lhs_params, term)
        if self.after:
            return f"instr({folded}, %s) = 1", (*lhs_params, term)
        if self.before:
            return f"substr({folded}, -%s) = %s", (*lhs_params, max(len(term), 1), term)
        return f"{folded} = %s", (*lhs_params, term)

    def as_sql(self, compiler, connection):
        return self.fallback(self.lhs, self.rhs).as_sql(compiler, connection)


class FoldedContains(_FoldedMatch):
    lookup_name = "folded_contains"


class FoldedStartsWith(_FoldedMatch):
    lookup_name = "folded_startswith"
    before, fallback = "", IStartsWith


class FoldedEndsWith(_FoldedMatch):
    """Used by the duplicate finder (same e-mail domain); the trigram indexes serve it too."""

    lookup_name = "folded_endswith"
    after, fallback = "", IEndsWith


class FoldedExact(_FoldedMatch):
    """Equal whatever the case: `col ILIKE 'term'`, which the trigram indexes serve, where
    Django's iexact (`UPPER(col) = UPPER(term)`) reads every lead."""

    lookup_name = "folded_exact"
    before, after, fallback = "", "", IExact


def register_sqlite_functions(sender, connection, **kwargs):
    """connection_created receiver: the lower() that SQLite lacks for letters beyond ASCII."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            SQLITE_LOWER, 1, lambda value: None if value is None else str(value).lower(), deterministic=True
        )


def looks_like_phone(text):
    """Digits and the punctuation people type in numbers ("+1 (212) 555-0123"), 3+ digits."""
    return len(phone_digits(text)) >= 3 and re.fullmatch(r"[\d\s+().-]+", text) is not None


def word_condition(word, *, prefix=False):
    """One word: in (or, with prefix, at the start of) the first or last name, e-mail or company,
    or in the phone's digits."""
    match_class = FoldedStartsWith if prefix else FoldedContains
    match = Q()
    for field in TEXT_FIELDS:
        match |= Q(match_class(F(field), word))
    # Only words that look like a phone fragment are matched against phones (stored as
    # +digits, so the digits need no escaping); `phone LIKE '%digits%'`, served by its index.
    if looks_like_phone(word):
        match |= Q(phone__contains=phone_digits(word))
    return match


def search_condition(term):
    """Every word must match (see word_condition); None when the term has no word.

    A term that is a whole phone number also matches as one number, so that its country
    code ("+1", too short to be a fragment on its own) does not make the search fail.
    """
    # PostgreSQL refuses a NUL in a query; no stored text holds one.
    words = term.replace("\x00", "").split()[:MAX_WORDS]
    if not words:
        return None
    # Only short words: nothing indexed would narrow a "contains" (see the module's docstring).
    prefix = all(len(word) < MIN_CONTAINS_LENGTH for word in words)
    condition = Q()
    for word in words:
        condition &= word_condition(word, prefix=prefix)
    if looks_like_phone(term):
        condition |= Q(phone__contains=phone_digits(term))
    return condition
