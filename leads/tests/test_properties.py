"""Property-based tests (hypothesis): normalisation, CSV sniffing and reading, names, filters, search.

Each property holds for every input hypothesis can build, not just the examples we thought of:
the functions that read what people type or upload either return a well-formed value or raise
our own validation error, never anything else, and the API's list answers 200 or a 400 in the
error shape, never a 500.

Bounded for CI: the "ci" profile runs 200 examples per property (fewer for the ones that write
to the database), derandomized, so a run is reproducible and takes seconds. For a longer hunt:

    HYPOTHESIS_PROFILE=long .venv/bin/pytest leads/tests/test_properties.py

("long": 5,000 examples per property, random, with the example database in .hypothesis/, so a
failure found once is tried first next time.)
"""

import codecs
import os
import string
from contextlib import contextmanager
from decimal import Decimal

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import RequestFactory
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leads import imports
from leads.filters import LeadFilter
from leads.models import Lead
from leads.normalization import normalize_email, normalize_phone, phone_digits, split_full_name
from leads.search import looks_like_phone, search_condition
from leads.tests.api.contract import ERROR_KEYS, client_for
from leads.tests.factories import LeadFactory

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Applied per test (never loaded globally: schemathesis runs hypothesis with its own settings).
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Properties that write to the database or send requests run a quarter as many examples.
DB_PROFILE = settings(PROFILE, max_examples=max(PROFILE.max_examples // 4, 25))


@contextmanager
def rolled_back():
    """Each example's rows are undone, so examples cannot see each other's leads."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# --- e-mail ------------------------------------------------------------------------------------

LOCAL = st.text(
    alphabet=string.ascii_letters + string.digits + "._+-!#$%&'*/=?^`{|}~", min_size=1, max_size=30
)
LABEL = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, min_size=1, max_size=3), LABEL
)
ADDRESS_LIKE = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
PADDING = st.sampled_from(["", " ", "\t", "  \n", "\u00a0"])


@PROFILE
@given(raw=st.one_of(st.text(max_size=80), ADDRESS_LIKE, st.builds(str.__add__, ADDRESS_LIKE, PADDING)))
@example(raw="  Ada@Example.COM ")
@example(raw="a..b@example.com")
def test_normalize_email_gives_a_canonical_address_or_our_error(raw):
    try:
        value = normalize_email(raw)
    except ValidationError as exc:
        assert exc.code == "invalid_email"
        return
    assert value == value.strip().lower()
    assert value == "" or "@" in value
    assert normalize_email(value) == value  # canonical: normalising again changes nothing
    assert value == raw.strip().lower()


@PROFILE
@given(raw=st.one_of(st.text(max_size=60), ADDRESS_LIKE))
@example(raw="ADA@EXAMPLE.COM")
def test_the_imports_fast_email_check_agrees_with_the_services(raw):
    """imports._email skips Django's validator for common shapes; its verdict must be the same."""
    try:
        expected = normalize_email(raw)
    except ValidationError:
        expected = ValidationError
    try:
        got = imports._email(raw)
    except ValidationError:
        got = ValidationError
    assert got == expected


# --- phone -------------------------------------------------------------------------------------

REGIONS = ["US", "GB", "DE", "FR", "IN", "BR", "AU", "JP", "NG", "CA", "IT", "ES", "MX", "ZA", "SG"]
SEPARATORS = st.sampled_from(["", " ", "-", ".", "(", ")", "  "])


@st.composite
def valid_numbers(draw):
    """A real, valid number of some country, as people write it: any format, any separators."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(
        st.sampled_from([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
    )
    number = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    style = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
            + ([phonenumbers.PhoneNumberFormat.NATIONAL] if region == "US" else [])
        )
    )
    written = phonenumbers.format_number(number, style)
    # Re-space the digits: each gap becomes any separator people type.
    out = []
    for char in written:
        if char.isdigit() or char == "+":
            out.append(char)
        else:
            out.append(draw(SEPARATORS.filter(lambda s: s not in "()") | st.just(" ")))
    return "".join(out), phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


PHONE_LIKE = st.builds(
    lambda plus, parts: plus + "".join(parts),
    st.sampled_from(["", "+", "+", "00"]),
    st.lists(st.one_of(st.text(alphabet=string.digits, min_size=1, max_size=4), SEPARATORS), max_size=10),
)


@PROFILE
@given(raw=st.one_of(st.text(max_size=50), PHONE_LIKE))
@example(raw="+1 (212) 555-0123")
@example(raw="0" * 41)
@example(raw="+4916800000000000")  # 16 digits, and phonenumbers calls it valid
def test_normalize_phone_gives_e164_or_our_error(settings, raw):
    settings.PHONE_DEFAULT_REGION = "US"
    try:
        value = normalize_phone(raw)
    except ValidationError as exc:
        assert exc.code == "invalid_phone"
        return
    if not raw.strip():
        assert value == ""
        return
    # E.164 allows 15 digits, but phonenumbers' metadata accepts a few longer German numbers:
    # what counts is that the stored value fits the column.
    assert (
        value.startswith("+")
        and value[1:].isdigit()
        and len(value) <= Lead._meta.get_field("phone").max_length
    )
    assert normalize_phone(value) == value  # E.164 reads back as itself, in any region
    assert normalize_phone(value, region="GB") == value


@PROFILE
@given(case=valid_numbers())
def test_a_real_number_in_any_spelling_normalises_to_its_e164(settings, case):
    settings.PHONE_DEFAULT_REGION = "US"
    written, e164 = case
    assert normalize_phone(written) == e164


@PROFILE
@given(raw=st.one_of(PHONE_LIKE, st.builds(lambda c: c[0], valid_numbers())))
@example(raw="+44 20 7946 0958")
@example(raw="212 555 0123")
@example(raw="+063200000")  # was read as +63 200000: no country code starts with 0
@example(raw="+00 1 212 555 0123")
def test_the_imports_fast_phone_path_agrees_with_the_services(settings, raw):
    """imports._fast_phone skips phonenumbers.parse for common shapes: never a different answer."""
    settings.PHONE_DEFAULT_REGION = "US"
    imports._default_country_code.cache_clear()
    fast = imports._fast_phone(raw)
    if fast is None:
        return
    assert normalize_phone(raw) == fast


@PROFILE
@given(raw=st.text(max_size=40))
def test_phone_digits_keeps_only_the_digits_in_order(raw):
    digits = phone_digits(raw)
    assert digits == "".join(
        char for char in raw if char in string.digits or (char.isdigit() and char.isdecimal())
    )


# --- the name splitter -------------------------------------------------------------------------

WORD = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P"], exclude_characters="\x85\xa0"),
    min_size=1,
    max_size=12,
)
SPACES = st.text(alphabet=" \t\n\u00a0\u2003", min_size=1, max_size=3)


@PROFILE
@given(full=st.text(max_size=60))
@example(full="Ada King Lovelace")
@example(full="  \u2003 ")
def test_split_full_name_keeps_every_word_and_puts_the_last_one_last(full):
    first, last = split_full_name(full)
    words = full.split()
    assert (first + " " + last).split() == words
    assert last == (words[-1] if len(words) > 1 else "")
    assert not any(char.isspace() for char in last)
    assert first == first.strip() and last == last.strip()
    # Round trip: the stored name reads back as the same first and last name.
    assert split_full_name(" ".join(filter(None, (first, last)))) == (first, last)


@PROFILE
@given(words=st.lists(WORD, min_size=2, max_size=5), gaps=st.lists(SPACES, min_size=5, max_size=5))
def test_a_name_typed_with_any_spacing_splits_on_its_last_word(words, gaps):
    typed = "".join(word + gap for word, gap in zip(words, gaps, strict=False)).strip()
    assert split_full_name(typed) == (" ".join(words[:-1]), words[-1])


# --- CSV sniffing and reading --------------------------------------------------------------------

HEADER_NAMES = ["Name", "E-mail", "Phone", "Company", "First name", "Last name", "Notes", "Stage", "Owner"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]
# Printable text: a file full of control characters is refused as binary, by design.
CELL = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters='"\xa0'),
    max_size=15,
)


@st.composite
def csv_files(draw):
    """(bytes, encoding, delimiter, headers): a real CSV in some encoding and delimiter."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    encoding = draw(st.sampled_from(ENCODINGS))
    # At least one column that names a person (the sniffer refuses a file without one).
    headers = draw(st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=6, unique=True))
    headers = [draw(st.sampled_from(["Name", "E-mail", "Phone", "First name", "Last name"])), *headers]
    headers = list(dict.fromkeys(headers))
    cell = CELL.filter(lambda text: delimiter not in text and text.strip() == text)
    rows = draw(st.lists(st.lists(cell, min_size=len(headers), max_size=len(headers)), max_size=5))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(delimiter.join(line) for line in [headers, *rows]) + newline
    if encoding == "cp1252":  # cp1252 lacks a few Latin-1 code points
        text = text.encode("latin-1").decode("cp1252", errors="replace").replace("\ufffd", "?")
    return text.encode(encoding), encoding, delimiter, headers


@PROFILE
@given(sample=st.binary(max_size=300), complete=st.booleans())
@example(sample=b"\xff\xfe", complete=True)
@example(sample=b"\xff\xfeN\x00a\x00m", complete=True)  # UTF-16 cut in the middle of a character
@example(sample=b"PK\x03\x04rest", complete=True)
@example(sample=b"Name\r", complete=False)
def test_sniff_reads_any_bytes_or_refuses_the_file(sample, complete):
    try:
        encoding, delimiter, headers = imports.sniff(sample, complete=complete)
    except ValidationError as exc:
        assert set(exc.message_dict) == {"file"} and all(exc.message_dict["file"])
        return
    assert encoding in {"utf-8", "utf-8-sig", "utf-16", "latin-1"}
    assert delimiter in {",", ";", "\t"}
    assert all(isinstance(header, str) for header in headers)


@PROFILE
@given(case=csv_files())
def test_sniff_finds_the_encoding_delimiter_and_headers_of_a_real_csv(case):
    data, encoding, delimiter, headers = case
    got_encoding, got_delimiter, got_headers = imports.sniff(data, complete=True)
    assert codecs.lookup(got_encoding).name in {
        codecs.lookup(encoding).name,
        # Plain ASCII is valid UTF-8, and any 8-bit text not valid UTF-8 is read as Latin-1.
        *(("utf-8", "latin-1", "iso8859-1") if encoding in ("utf-8", "cp1252", "latin-1") else ()),
    }
    if len(headers) > 1:
        assert got_delimiter == delimiter
    assert got_headers == headers


@pytest.mark.django_db
@DB_PROFILE
@given(data=st.one_of(st.binary(max_size=400), st.builds(lambda case: case[0], csv_files())))
@example(data=b'Name,E-mail\n"unclosed,quote\nx,y\n')
@example(data=b"Name,E-mail\n" + b"a" * 70 + b"\x00,b\n")
@example(data="Name;E-mail\nJos\u00e9;jose@example.com\n".encode("utf-16"))
def test_an_uploaded_file_is_refused_or_previewed_never_an_exception(sales, data):
    """start_upload then preview, as the import page and API do, with whatever bytes arrive."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    with rolled_back():
        try:
            job = imports.start_upload(actor=sales, file=SimpleUploadedFile("fuzz.csv", data, "text/csv"))
        except ValidationError as exc:
            assert set(exc.message_dict) == {"file"}
            return
        rows = imports.preview(job)
        assert len(rows) <= imports.PREVIEW_ROWS
        for row in rows:
            assert row.action in {"create", "update", "skip", "fail"}
            assert all(isinstance(error, str) and error for error in row.errors)


# --- filters and the API list ---------------------------------------------------------------------

FILTER_KEYS = [
    "query",
    "source",
    "owner",
    "stage",
    "created_after",
    "created_before",
    "stage_changed_after",
    "stage_changed_before",
    "ordering",
]
TRICKY = st.sampled_from(
    [
        "",
        " ",
        "me",
        "unassigned",
        "0",
        "-1",
        "1e3",
        "9" * 19,
        "9" * 400,
        "²",
        "%",
        "%%s",
        "_",
        "\\",
        "'",
        "\x00",
        "2026-01-01",
        "2026-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+01:00",
        "-created_at",
        "value,-value",
        ",",
        "nonsense_field",
        "New Lead",
        "facebook",
        "in progress",
    ]
)
VALUE = st.one_of(TRICKY, st.text(max_size=30))
QUERY_DICTS = st.dictionaries(
    st.one_of(st.sampled_from(FILTER_KEYS), st.sampled_from(["page", "page_size"])), VALUE
)


@pytest.mark.django_db
@DB_PROFILE
@given(params=QUERY_DICTS)
@example(params={"owner": "9" * 19})
@example(params={"created_after": "2026-01-01T00:00:00+23:59"})
@example(params={"query": "\x00"})
def test_the_lead_filterset_validates_or_filters_never_raises(sales, params):
    request = RequestFactory().get("/board/", params)
    request.user = sales
    filterset = LeadFilter(data=params, queryset=Lead.objects.all(), request=request)
    if filterset.is_valid():
        list(filterset.qs[:5])  # the SQL runs
        return
    for field, messages in filterset.errors.items():
        assert field in FILTER_KEYS and messages


@pytest.mark.django_db
@DB_PROFILE
@given(
    params=st.dictionaries(
        st.one_of(st.sampled_from(FILTER_KEYS + ["page", "page_size"]), st.text(max_size=8)), VALUE
    )
)
@example(params={"page": "0"})
@example(params={"page_size": "9" * 30})
@example(params={"ordering": ","})
@example(params={"stage": "\x00"})
def test_the_api_lead_list_answers_200_or_a_400_in_our_shape(sales, params, django_assert_max_num_queries):
    LeadFactory.create_batch(2, owner=sales) if not Lead.objects.exists() else None
    with django_assert_max_num_queries(15):
        response = client_for(sales).get("/api/leads/", params)
    assert response.status_code in (200, 400), (params, response.status_code)
    body = response.json()
    if response.status_code == 400:
        assert set(body) == {"error"} and set(body["error"]) >= ERROR_KEYS
        assert body["error"]["fields"], "a 400 names the parameters at fault"
        assert set(body["error"]["fields"]) <= set(FILTER_KEYS) | {"page", "page_size"}
    else:
        assert isinstance(body["leads"], list)


# --- search --------------------------------------------------------------------------------------

NAME = st.text(alphabet=st.characters(categories=["Lu", "Ll"]), min_size=1, max_size=15)


@pytest.mark.django_db
@DB_PROFILE
@given(term=st.text(max_size=60))
@example(term="% _ \\")
@example(term="+1 (212) 555")
@example(term="a " * 30)
def test_any_search_term_runs(sales, term):
    condition = search_condition(term)
    if condition is None:
        assert not term.split() or not term.strip()
        return
    list(Lead.objects.filter(condition)[:5])


@pytest.mark.django_db
@DB_PROFILE
@given(first=NAME, last=NAME, company=NAME)
@example(first="Zoë", last="O", company="Ltd")
def test_a_lead_is_found_by_each_of_its_names_and_its_company(sales, first, last, company):
    with rolled_back():
        lead = LeadFactory(
            owner=sales, first_name=first, last_name=last, company=company, email="found@x.example"
        )
        for term in (first, last, company, f"{first} {last}", "found@x.example"):
            if looks_like_phone(term):
                continue
            found = Lead.objects.filter(search_condition(term)).values_list("pk", flat=True)
            assert lead.pk in found, term


@PROFILE
@given(value=st.decimals(min_value=0, max_value=Decimal("9999999"), places=2))
def test_a_value_written_with_thousands_separators_reads_back(value):
    """The import's value parser: 1,234.50 and 1.234,50 and 1234.50 are all the same amount."""
    plain = f"{value:.2f}"
    english = f"{value:,.2f}"
    european = english.replace(",", " ").replace(".", ",").replace(" ", ".")
    for written in (plain, english, european, f"${english}", f"{european} €"):
        assert imports._decimal(written) == value, written
