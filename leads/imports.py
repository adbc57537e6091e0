"""CSV import of leads: upload and sniffing, column mapping, preview, the batched worker, cancel and revert.

The flow (the import pages and API call these; see /work/imports-interface.md):
start_upload → (preview / configure_import)* → queue_import → run_import (a background task) →
job_progress / error_report_rows, and later cancel_import or revert_import.

How the worker stays fast with bounded memory:
- The stored file is streamed (binary → TextIOWrapper with the sniffed encoding → csv.reader),
  never read whole; each batch of settings.IMPORT_BATCH_SIZE rows is validated in Python with
  precompiled regexes and lookup dicts loaded once per run (stages, sources, users).
- Duplicates are looked up once per batch (one query: live leads whose e-mail or phone is in the
  batch); duplicates inside the file are caught with dicts inside the batch, and across batches
  by that same lookup, because earlier batches are committed by then. So memory does not grow
  with the file: nothing is kept per row between batches. In update mode a row that matches a
  lead an earlier row of the same batch creates or updates is planned against that lead's state
  as the earlier rows leave it (see _plan), so the batch is not cut into small transactions.
- Each batch is ONE transaction with a fixed number of queries whatever its size. On PostgreSQL:
  ids for the new leads reserved with nextval, then COPY for leads, ImportRecord, `imported`
  Activity and ImportRowError rows, one UPDATE ... FROM unnest(...) for the updated leads; on
  SQLite (no COPY) bulk_create / bulk_update. Then the job's counters and resume position. One
  board event per batch. Phones in the common shapes skip phonenumbers.parse (see _fast_phone).
- A concurrent writer that takes an e-mail/phone between the lookup and the insert makes the
  batch's transaction fail with IntegrityError: it is retried, then written row by row.

Resuming: `resume_line` counts the CSV records (blank ones included) consumed by committed
batches and is written in the batch's own transaction, so after a crash a new run re-opens the
file and skips exactly that many records: parsing is deterministic, so the skipped records are
the committed ones and no lead is created twice. (Skipping by count instead of seeking to a byte
offset works for every encoding, UTF-16 included, and for S3 storage; it costs a re-parse of the
committed part, about a second per million rows.) `resume_offset` holds how many bytes of the
file the reader had consumed at that commit: it is shown as progress, never trusted for seeking.
`python manage.py resume_imports` re-queues jobs whose worker died (running with a stale heartbeat).
"""

import codecs
import csv
import io
import json
import logging
import queue
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

import phonenumbers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from leads import policies
from leads.attachments import safe_filename
from leads.events import announce
from leads.models import Activity, ImportJob, ImportRecord, ImportRowError, Lead, Source, Stage
from leads.normalization import normalize_email, normalize_phone, split_full_name
from leads.services import DEFAULT_SOURCE_NAME, _display

logger = logging.getLogger(__name__)

IMPORT_FIELDS = (
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "title",
    "source",
    "owner_email",
    "stage",
    "value",
    "notes",
)
FIELD_LABELS = {
    "name": "Name",
    "first_name": "First name",
    "last_name": "Last name",
    "email": "E-mail",
    "phone": "Phone",
    "company": "Company",
    "title": "Title",
    "source": "Source",
    "owner_email": "Owner e-mail",
    "stage": "Stage",
    "value": "Value",
    "notes": "Notes",
}
# The source new leads get when the row names none and the user chose no default.
IMPORT_SOURCE_NAME = "Import"
# A running job whose worker has not reported for this long has died; resume_imports takes it over.
STALE_AFTER = timedelta(minutes=5)
# No real header is this long; a longer first line is a binary file or not a CSV at all.
MAX_HEADER_BYTES = 1024 * 1024
# A physical line longer than this is refused as a row (a 50 MB line costs one failed row, not
# the worker's memory), and so is a field: csv.field_size_limit is set to it while reading.
MAX_LINE_CHARS = 1024 * 1024
# A quoted field that runs on over this many lines is an unclosed quote, not a long note.
MAX_RECORD_LINES = 500
_TOO_LONG = "\x00leadboard-line-too-long\x00"
PREVIEW_ROWS = 20

# Header spellings → field, compared after lower-casing and dropping everything but letters
# and digits ("E-mail address" → "emailaddress").
_HEADER_SPELLINGS = {
    "name": "name fullname contactname contact leadname person customername customer clientname",
    "first_name": "firstname first givenname forename fname prenom vorname nombre",
    "last_name": "lastname last surname familyname lname nom nachname apellido apellidos",
    "email": "email emailaddress mail mailaddress emailadress eaddress courriel",
    "phone": "phone phonenumber telephone tel mobile mobilephone cell cellphone phoneno mobilenumber "
    "telefon telefono workphone",
    "company": "company companyname organization organisation org account accountname business employer firm",
    "title": "title jobtitle position role designation",
    "source": "source leadsource origin channel",
    "owner_email": "owner owneremail owneremailaddress ownermail assignedto assignee salesperson salesrep "
    "rep accountowner leadowner",
    "stage": "stage status leadstatus pipelinestage dealstage",
    "value": "value dealvalue amount expectedvalue dealsize dealamount revenue worth price",
    "notes": "notes note comments comment description remarks memo",
}
_HEADER_TO_FIELD = {
    spelling: name for name, spellings in _HEADER_SPELLINGS.items() for spelling in spellings.split()
}
_NOT_ALNUM = re.compile(r"[\W_]+", re.UNICODE)

# Fast paths: the common shapes pass here; anything else gets the full (slower) validators, so
# the verdict is always the one the services give.
_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z"
)
_FORMULA_ESCAPED = re.compile(r"'[=+\-@\t\r]")
_VALUE_JUNK = re.compile(r"[\s$€£¥\u00a0]|[A-Za-z]{3}\Z")
_MAX_VALUE = Decimal("9999999999.99")
_LENGTHS = {"first_name": 100, "last_name": 100, "company": 200, "title": 200, "email": 254}
# Fields an update may change: the lead's own fields. Stage and owner of an existing lead are
# left alone: moves and reassignments have services of their own that record them differently.
_UPDATABLE = ("first_name", "last_name", "email", "phone", "company", "title", "source", "value", "notes")


@dataclass
class PreviewRow:
    line: int
    cells: list
    values: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    action: str = "create"  # "create" | "update" | "skip" | "fail"
    existing_id: int | None = None


# --- mapping ----------------------------------------------------------------------------------


def _header_key(header):
    return _NOT_ALNUM.sub("", _unescape(str(header or "")).strip().lower())


def suggest_mapping(headers) -> dict:
    """{"<column index>": field} for the headers we recognise; the first column wins a field.

    The export's own headers map back to the same fields; its "ID" and "Created" are not lead
    fields an import writes, so they stay unmapped.
    """
    mapping, taken = {}, set()
    for index, header in enumerate(headers):
        field_name = _HEADER_TO_FIELD.get(_header_key(header))
        if field_name and field_name not in taken:
            mapping[str(index)] = field_name
            taken.add(field_name)
    return mapping


def _unescape(cell):
    """Undo the export's formula escaping ("'=1+2" → "=1+2") so a round trip changes nothing."""
    return cell[1:] if cell[:1] == "'" and _FORMULA_ESCAPED.match(cell) else cell


# --- upload and sniffing ----------------------------------------------------------------------


def _file_error(message):
    return ValidationError({"file": [message]})


def sniff(sample, *, complete):
    """(encoding, delimiter, headers) of a file from its first bytes, or ValidationError on "file".

    `complete` says the sample is the whole file (so a missing newline is not "too long").
    """
    if not sample.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise _file_error("The file is empty.")
    if sample[:4] == b"PK\x03\x04" or sample[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise _file_error(
            "This is an Excel workbook (or another zipped file), not a CSV. In Excel choose "
            "File → Save As → CSV UTF-8, then upload that file."
        )
    if sample[:3] == codecs.BOM_UTF8:
        encoding = "utf-8-sig"
    elif sample[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        encoding = "utf-16"
    elif b"\x00" in sample:
        raise _file_error("This looks like a binary file, not a CSV text file.")
    else:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
            encoding = "utf-8"
        except UnicodeDecodeError:
            # Not UTF-8: Latin-1 decodes anything, so the binary check below decides.
            encoding = "latin-1"
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(sample, final=complete)
    except UnicodeDecodeError:
        raise _file_error("The file's text cannot be decoded; save it as CSV UTF-8 and try again.") from None
    head = text[:65536]
    controls = sum(1 for char in head if char < " " and char not in "\t\r\n")
    if controls > max(2, len(head) // 100):
        raise _file_error("This looks like a binary file, not a CSV text file.")
    first_line_end = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=-1)
    if first_line_end < 0 and not complete or first_line_end > MAX_HEADER_BYTES:
        raise _file_error(
            "The first line is longer than 1 MB; this does not look like a CSV file with a header."
        )
    first_line = text if first_line_end < 0 else text[:first_line_end]
    counts = {delimiter: first_line.count(delimiter) for delimiter in (",", ";", "\t")}
    # Ties (a one-column file) go to the comma, the format's namesake.
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    with _field_limit():
        try:
            headers = next(csv.reader(io.StringIO(first_line), delimiter=delimiter), [])
        except csv.Error:
            headers = []
    headers = [_unescape(header.strip()) for header in headers]
    mapping = suggest_mapping(headers)
    if not set(mapping.values()) & {"name", "first_name", "last_name", "email", "phone"}:
        raise _file_error(
            "No recognisable header: the first line must name the columns, e.g. "
            "“Name, E-mail, Phone, Company”."
        )
    return encoding, delimiter, headers


def start_upload(*, actor, file) -> ImportJob:
    """Check and store an uploaded CSV and read its header; the job then waits for the mapping."""
    if not policies.can_import(actor):
        raise PermissionDenied("You cannot import leads.")
    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, io.SEEK_END)
        size = file.tell()
    if size > settings.IMPORT_MAX_BYTES:
        limit = settings.IMPORT_MAX_BYTES // (1024 * 1024)
        raise _file_error(f"The file is larger than {limit} MB; split it into smaller files.")
    file.seek(0)
    sample = file.read(MAX_HEADER_BYTES + 4)
    encoding, delimiter, headers = sniff(sample, complete=len(sample) >= size)
    file.seek(0)
    # The name is only shown (the file is stored at a random path): the attachments' sanitiser
    # drops directories, control and bidi characters, and caps the length, as for any upload.
    filename = safe_filename(getattr(file, "name", "") or "import.csv")
    job = ImportJob(
        created_by=actor,
        filename=filename,
        size=size,
        encoding=encoding,
        delimiter=delimiter,
        headers=headers,
        mapping=suggest_mapping(headers),
        duplicate_mode=ImportJob.DuplicateMode.SKIP,
        status=ImportJob.Status.MAPPING,
    )
    job.file.save(filename, file, save=False)
    job.save()
    return job


# --- reading the stored file ------------------------------------------------------------------


class _field_limit:
    """csv.field_size_limit raised to MAX_LINE_CHARS while we read, restored afterwards."""

    def __enter__(self):
        self.previous = csv.field_size_limit(MAX_LINE_CHARS)

    def __exit__(self, *exc):
        csv.field_size_limit(self.previous)


def _guarded_lines(text):
    """The file's physical lines, a line over MAX_LINE_CHARS replaced by a marker row."""
    for line in text:
        if len(line) > MAX_LINE_CHARS:
            yield _TOO_LONG + "\n"
        else:
            yield line


@dataclass
class _Record:
    index: int  # records consumed so far, this one included (what resume_line counts)
    line: int  # the physical line it starts on; the header is line 1
    cells: list | None
    error: str = ""
    # (values, errors) once cleaned: a batch cut short is planned again without cleaning again.
    cleaned: tuple | None = None
    offset: int | None = None  # on a batch's last record: bytes of the file read up to it


class _Reader:
    """The file's data records after the header, as _Record, from `skip` records on."""

    def __init__(self, job, skip=0):
        self.job = job
        self.skip = skip
        self.binary = None

    @property
    def bytes_read(self):
        try:
            return self.binary.tell()
        except Exception:
            return 0

    def __iter__(self):
        job = self.job
        handle = default_storage.open(job.file.name, "rb")
        self.binary = getattr(handle, "file", handle)
        # errors="replace": a stray byte deep in a big file fails its row (see _clean_row), not the run.
        text = io.TextIOWrapper(self.binary, encoding=job.encoding or "utf-8", errors="replace", newline="")
        try:
            with _field_limit():
                reader = csv.reader(_guarded_lines(text), delimiter=job.delimiter or ",")
                index, line_end = 0, 0
                try:
                    next(reader)  # the header
                except (StopIteration, csv.Error):
                    return
                line_end = reader.line_num
                while True:
                    start = line_end + 1
                    try:
                        cells = next(reader)
                        error = ""
                    except StopIteration:
                        return
                    except csv.Error as exc:
                        cells, error = None, _csv_error_reason(exc)
                    line_end = reader.line_num
                    index += 1
                    if index <= self.skip:
                        continue
                    if cells is not None and line_end - start >= MAX_RECORD_LINES:
                        cells, error = (
                            None,
                            (
                                f"A quoted field runs on over {MAX_RECORD_LINES} lines: a quote is probably "
                                "not closed on this line."
                            ),
                        )
                    yield _Record(index=index, line=start, cells=cells, error=error)
        finally:
            text.close()


def _csv_error_reason(exc):
    if "field larger than field limit" in str(exc):
        return "A field is longer than 1 MB; check for a quote that is not closed."
    return f"The row cannot be read as CSV ({exc})."


# --- cleaning and validating one row -----------------------------------------------------------


@lru_cache(maxsize=4096)
def _phone(raw):
    # phonenumbers is the slow part of a row; a file repeats switchboard numbers often enough
    # for a small cache to pay.
    return _fast_phone(raw) or normalize_phone(raw)


# Digits with the usual separators, an optional leading "+": the shapes _fast_phone understands.
_PHONE_SIMPLE = re.compile(r"\+?[0-9][0-9 ().\-]{6,28}\Z")
_PHONE_SEPARATORS = re.compile(r"[ ().\-]+")


def _fast_phone(raw):
    """normalize_phone's answer for the common shapes without phonenumbers.parse, or None.

    Covered: "+<country code><number>" with any of space ( ) . - between the digits, and a
    10-digit North American number in the same spellings when the default region is in +1. The
    number is built as parse would build it and checked with phonenumbers' own validity rules;
    anything parse might read differently (a national number starting with 0 or with the
    country's national prefix, an unknown country code) returns None and takes the full path,
    and so does every invalid number, so each error message is normalize_phone's own.
    """
    value = raw.strip()
    if not _PHONE_SIMPLE.match(value):
        return None
    digits = _PHONE_SEPARATORS.sub("", value.lstrip("+"))
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        return None
    if value[0] == "+":
        if digits[0] == "0":
            # No country code starts with 0: parse refuses "+0…", so this must not read
            # "+063…" as +63 (found by hypothesis, leads/tests/test_properties.py).
            return None
        for length in (1, 2, 3):
            country_code = int(digits[:length])
            if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        national = digits[length:]
    else:
        country_code, national = _default_country_code(), digits
        if country_code != 1 or len(national) != 10:
            return None
    if national[:1] in ("0", "") or _national_prefix(country_code).match(national):
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        return None
    return f"+{country_code}{national}"


@cache
def _default_country_code():
    return phonenumbers.country_code_for_region(settings.PHONE_DEFAULT_REGION)


@cache
def _national_prefix(country_code):
    """What parse strips from the start of a national number of this country (never matches if none)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(
        phonenumbers.region_code_for_country_code(country_code)
    )
    prefix = metadata and (metadata.national_prefix_for_parsing or metadata.national_prefix)
    return re.compile(prefix) if prefix else re.compile(r"(?!)")


def _email(raw):
    value = raw.strip().lower()
    if not value or _SIMPLE_EMAIL.match(value) and len(value) <= 254:
        return value
    return normalize_email(value)


def _decimal(raw):
    text = _VALUE_JUNK.sub("", raw)
    if "," in text and "." in text:
        # 1,234.50 or 1.234,50: whichever comes last is the decimal point.
        text = (
            text.replace(",", "")
            if text.rfind(".") > text.rfind(",")
            else text.replace(".", "").replace(",", ".")
        )
    elif "," in text:
        head, _, tail = text.rpartition(",")
        text = text.replace(",", "") if len(tail) == 3 else f"{head.replace(',', '')}.{tail}"
    value = Decimal(text)
    if not value.is_finite():
        raise InvalidOperation
    return value


class _Context:
    """What every row of one import needs, loaded once: the job's rules and the lookup tables."""

    def __init__(self, job, *, mapping=None, defaults=None, duplicate_mode=None, create_missing_source=False):
        self.job = job
        self.actor = job.created_by
        self.manager = policies.is_manager(self.actor)
        self.mapping = {
            int(index): name for index, name in (job.mapping if mapping is None else mapping).items()
        }
        self.defaults = job.defaults if defaults is None else defaults
        self.duplicate_mode = duplicate_mode or job.duplicate_mode
        self.stages = {stage.name.casefold(): stage for stage in Stage.objects.all()}
        self.stages_by_id = {stage.pk: stage for stage in self.stages.values()}
        self.sources = {source.name.casefold(): source for source in Source.objects.all()}
        self.sources_by_id = {source.pk: source for source in self.sources.values()}
        users = get_user_model().objects.filter(is_active=True).only("pk", "email")
        self.users = {user.email.casefold(): user for user in users} if self.manager else {}
        self.users_by_id = {user.pk: user for user in self.users.values()}
        self.default_source = self.sources_by_id.get(_int(self.defaults.get("source")))
        self.default_stage = self.stages_by_id.get(_int(self.defaults.get("stage")))
        self.default_owner = None
        if self.manager and self.defaults.get("owner"):
            self.default_owner = self.users_by_id.get(_int(self.defaults.get("owner")))
        # Empty source/stage cells, with no default chosen: the Import source, the first open stage.
        self.fallback_source = self.sources.get(IMPORT_SOURCE_NAME.casefold()) or self.sources.get(
            DEFAULT_SOURCE_NAME.casefold()
        )
        if (self.fallback_source is None or self.fallback_source.archived) and create_missing_source:
            self.fallback_source = Source.objects.get_or_create(name=IMPORT_SOURCE_NAME)[0]
        self.fallback_stage = next(
            (
                s
                for s in sorted(self.stages.values(), key=lambda s: (s.position, s.pk))
                if not s.archived and s.kind == Stage.Kind.OPEN
            ),
            None,
        )
        self.owner_ignored_note = not self.manager and "owner_email" in self.mapping.values()
        self.width = len(job.headers)
        self.lead_sequence = None  # PostgreSQL: the sequence behind leads_lead.id, asked once
        self.rights = {}  # owner id → (can edit, can view) for the importing user
        self.created_fragments = {}  # see _created_data


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _clean_row(ctx, cells):
    """(values, errors): the row's lead fields cleaned as the services would store them.

    values has first_name, last_name, email, phone, company, title, value, notes (only the
    columns that are mapped), plus source, stage, owner (objects) for a new lead, and "given":
    the fields the row actually filled (an update only changes those; an empty cell never blanks
    a lead's field).
    """
    raw = {}
    for index, name in ctx.mapping.items():
        if index < len(cells):
            cell = cells[index].strip()
            raw[name] = _unescape(cell) if cell[:1] == "'" else cell
        else:
            raw[name] = ""
    errors = []
    if any("\x00" in value for value in raw.values()):
        # PostgreSQL text cannot hold NUL, and no real name or e-mail has one.
        errors.append("The row contains NUL characters; this part of the file is not text.")
    elif any("\ufffd" in value for value in raw.values()):
        errors.append(
            f"The row has bytes that are not valid {ctx.job.encoding} text; save the file as CSV UTF-8."
        )
    values, given = {}, set()
    first, last = raw.get("first_name", ""), raw.get("last_name", "")
    if not (first or last) and raw.get("name"):
        first, last = split_full_name(raw["name"])
    if "first_name" in raw or "last_name" in raw or "name" in raw:
        if not first and last:
            first, last = last, ""  # a lone surname still names someone, as in the services
        values["first_name"], values["last_name"] = first, last
        if first:
            given.add("first_name")
        if last:
            given.add("last_name")
        if not first:
            errors.append("The row has no name.")
    for name in ("company", "title", "notes"):
        if name in raw:
            values[name] = raw[name]
            if raw[name]:
                given.add(name)
    if "email" in raw:
        try:
            values["email"] = _email(raw["email"])
        except ValidationError:
            errors.append(f"“{raw['email'][:100]}” is not a valid e-mail address.")
            values["email"] = ""
        if values["email"]:
            given.add("email")
    if "phone" in raw:
        try:
            values["phone"] = _phone(raw["phone"]) if raw["phone"] else ""
        except ValidationError:
            errors.append(f"“{raw['phone'][:100]}” is not a valid phone number.")
            values["phone"] = ""
        if values["phone"]:
            given.add("phone")
    if (
        not values.get("email")
        and not values.get("phone")
        and not any("e-mail" in e or "phone" in e for e in errors)
    ):
        errors.append("The row has neither an e-mail address nor a phone number.")
    for name, limit in _LENGTHS.items():
        if len(values.get(name, "")) > limit:
            errors.append(f"{FIELD_LABELS[name]} is longer than {limit} characters.")
    if "value" in raw:
        if raw["value"]:
            try:
                values["value"] = _decimal(raw["value"]).quantize(Decimal("0.01"))
                if values["value"] < 0:
                    errors.append("The value cannot be negative.")
                elif values["value"] > _MAX_VALUE:
                    errors.append("The value is too large.")
                else:
                    given.add("value")
            except (InvalidOperation, ValueError):
                errors.append(f"“{raw['value'][:100]}” is not a number (value).")
        else:
            values["value"] = Decimal("0.00")
    source_name = raw.get("source", "")
    source = ctx.sources.get(source_name.casefold()) if source_name else None
    if source_name and (source is None or source.archived):
        if ctx.default_source is None:
            why = "Unknown" if source is None else "Archived"
            errors.append(f"{why} source “{source_name[:100]}”: choose a default source or fix the row.")
        source = ctx.default_source
    elif source is not None:
        given.add("source")
    values["source"] = source or ctx.default_source or ctx.fallback_source
    stage_name = raw.get("stage", "")
    stage = ctx.stages.get(stage_name.casefold()) if stage_name else None
    if stage_name and (stage is None or stage.archived):
        if ctx.default_stage is None:
            why = "Unknown" if stage is None else "Archived"
            errors.append(f"{why} stage “{stage_name[:100]}”: choose a default stage or fix the row.")
        stage = ctx.default_stage
    values["stage"] = stage or ctx.default_stage or ctx.fallback_stage
    values["owner"] = _row_owner(ctx, raw.get("owner_email", ""), errors)
    values["given"] = given
    return values, errors


def _row_owner(ctx, owner_email, errors):
    """Sales: every row is theirs. Managers: the owner column, else the default owner, else themselves."""
    if not ctx.manager:
        return ctx.actor
    if owner_email:
        user = ctx.users.get(owner_email.casefold())
        if user is not None:
            return user
        if ctx.default_owner is None:
            errors.append(
                f"Unknown owner “{owner_email[:100]}”: no active user has this e-mail; choose a default "
                "owner or fix the row."
            )
        return ctx.default_owner
    return ctx.default_owner or ctx.actor


def _new_lead_problems(values):
    problems = []
    if values["stage"] is None:
        problems.append("There is no open stage to put new leads in.")
    elif values["stage"].is_lost:
        problems.append(
            f"New leads cannot start in the lost stage “{values['stage'].name}” (it needs a reason)."
        )
    if values["source"] is None:
        problems.append("Choose a default source: the row names none.")
    return problems


# --- duplicates and what each row will do ---------------------------------------------------------


@dataclass
class _Planned:
    line: int
    cells: list
    values: dict
    action: str  # create / update / skip / fail
    errors: list = field(default_factory=list)
    existing: dict | None = None  # the live lead it matched: its id, owner and updatable fields
    changes: dict = field(default_factory=dict)  # field → (old, new) for updates
    note: str = ""
    state: dict | None = None  # for a create: the new lead as the batch leaves it


_LOOKUP_COLUMNS = (
    "id", "owner_id", "version", "first_name", "last_name", "email", "phone", "company", "title",
    "source_id", "value", "notes",
)  # fmt: skip
# Each half repeats a partial unique index's condition, so each is answered from that index
# (an OR of the two may be planned as a scan of the whole table). pg_trgm's GIN indexes
# (migration 0006) also serve `=`, and right after a batch, with their pending lists full, the
# planner chose the phone's trigram index for these lookups: 8-17 s a batch instead of
# milliseconds (bench_import fell from 6,800 to 450 rows/s). GIN is only ever read through a
# bitmap scan, so _lookup_existing turns bitmap scans off for this one statement.
_LOOKUP_SQL = (
    f"SELECT {', '.join(_LOOKUP_COLUMNS)} FROM leads_lead WHERE id IN ("
    "SELECT l.id FROM unnest(string_to_array(%s, E'\\n')) AS wanted(value) JOIN leads_lead l"
    " ON l.email = wanted.value WHERE l.deleted_at IS NULL AND l.email <> '' UNION ALL "
    "SELECT l.id FROM unnest(string_to_array(%s, E'\\n')) AS wanted(value) JOIN leads_lead l"
    " ON l.phone = wanted.value"
    " WHERE l.deleted_at IS NULL AND l.phone <> '')"
)


def _lookup_existing(emails, phones, *, lock=False):
    """Live leads holding any of these e-mails or phones: {("email", v) | ("phone", v): row}.

    One dict per lead (found by e-mail and by phone it is the same object), so an update planned
    on it is seen by every later row of the batch. The `email <> ''` / `phone <> ''` conditions
    repeat the partial unique indexes' condition, so the database answers from those indexes.
    """
    found = {}
    if not emails and not phones:
        return found
    if connection.vendor == "postgresql":
        # One query, values passed as two arrays: the ORM's IN (...) costs Python per value.
        sql = _LOOKUP_SQL + (" FOR UPDATE" if lock else "")
        # Only for a batch being written (lock: always inside its transaction, where SET LOCAL
        # holds), set back right after; if the lookup fails, the batch's rollback undoes it. The
        # preview's 20 rows are not worth the two statements.
        guard_planner = lock and connection.in_atomic_block
        with connection.cursor() as cursor:
            if guard_planner:
                cursor.execute("SET LOCAL enable_bitmapscan = off")
            # Each list as one newline-joined string: dumping a Python list as an array costs
            # Python per item, a string costs nothing. Cleaned e-mails and phones hold no newline.
            cursor.execute(sql, ["\n".join(emails), "\n".join(phones)])
            rows = cursor.fetchall()
            if guard_planner:
                cursor.execute("SET LOCAL enable_bitmapscan TO DEFAULT")
        for row in rows:
            lead = dict(zip(_LOOKUP_COLUMNS, row, strict=True))
            lead["pk"], lead["source"], lead["deleted_at"] = lead.pop("id"), lead.pop("source_id"), None
            for name in ("email", "phone"):
                if lead[name]:
                    found[(name, lead[name])] = lead
        return found
    wanted = ("pk", "owner_id", "deleted_at", "version", *_UPDATABLE)
    by_pk = {}
    for name, keys in (("email", emails), ("phone", phones)):
        if not keys:
            continue
        rows = Lead.objects.live().exclude(**{name: ""}).filter(**{f"{name}__in": list(keys)})
        if lock:
            rows = rows.select_for_update(of=("self",))
        for row in rows.values(*wanted):
            row = by_pk.setdefault(row["pk"], row)
            found[(name, row[name])] = row
    return found


def _cleaned(ctx, record):
    """(values, errors) of a record; values is None for a record that is not a row at all."""
    if record.cells is None:
        return None, [record.error]
    if record.cells and record.cells[0].startswith(_TOO_LONG):
        record.cells = None  # not kept for the report: it is the line that is too long
        return None, ["The line is longer than 1 MB."]
    return _clean_row(ctx, record.cells)


def _pending_lead(item):
    """The state of a lead this batch creates, which later rows of the batch may update."""
    values = item.values
    state = {name: values.get(name, "") for name in _UPDATABLE}
    state.update(
        pk=None,
        owner_id=values["owner"].pk if values["owner"] else None,
        deleted_at=None,
        version=1,
        source=values["source"].pk,
        value=values.get("value", Decimal("0")),
        pending=item,
    )
    return state


def _plan(ctx, records, *, lock=False, sequential=True):
    """What each record of a batch will do, with one duplicate lookup for the batch.

    Returns (planned, cut). In update mode a row that matches a lead an earlier row of the batch
    creates or updates is planned as an update of that lead's state as the earlier rows leave it
    (`sequential`), exactly as if the earlier rows had been committed first. Where that is not
    clear-cut (the row touches two such leads, or a lead's e-mail/phone changed under it, or
    create mode), `cut` is the position where the batch must end early: the rest goes into the
    next part, whose lookup then sees the committed leads.
    """
    cleaned = []
    emails, phones = set(), set()
    for record in records:
        if record.cleaned is None:
            record.cleaned = _cleaned(ctx, record)
        values, errors = record.cleaned
        if values is not None:
            if values.get("email"):
                emails.add(values["email"])
            if values.get("phone"):
                phones.add(values["phone"])
        cleaned.append((record, values, errors))
    existing = _lookup_existing(emails, phones, lock=lock)

    planned = []
    seen = {}  # ("email"|"phone", value) → (line, state of the lead that has it now)
    mode = ctx.duplicate_mode
    for position, (record, values, errors) in enumerate(cleaned):
        cells = record.cells if record.cells is not None else []
        if values is None or errors:
            planned.append(_Planned(record.line, cells, values or {}, "fail", list(errors)))
            continue
        keys = [(name, values[name]) for name in ("email", "phone") if values.get(name)]
        earlier = next((seen[key][0] for key in keys if key in seen), None)
        if earlier is not None and mode == ImportJob.DuplicateMode.SKIP:
            planned.append(
                _Planned(record.line, cells, values, "skip", note=f"Duplicate of line {earlier} in the file.")
            )
            continue
        hits = [(key, seen[key][1] if key in seen else existing.get(key)) for key in keys]
        if any(lead is not None and lead[key[0]] != key[1] for key, lead in hits):
            return planned, position  # an earlier row changed this e-mail/phone away: look again
        item = _Planned(record.line, cells, values, "create")
        if earlier is not None:
            targets = {id(lead): lead for _key, lead in hits if lead is not None}
            if mode != ImportJob.DuplicateMode.UPDATE or not sequential or len(targets) != 1:
                return planned, position
            _plan_update(ctx, item, {0: next(iter(targets.values()))})
        else:
            matches = {lead["pk"]: lead for _key, lead in hits if lead is not None}
            if matches and mode == ImportJob.DuplicateMode.SKIP:
                item.action, item.existing = "skip", next(iter(matches.values()))
                item.note = f"Matches lead #{item.existing['pk']}."
            elif matches and mode == ImportJob.DuplicateMode.UPDATE:
                _plan_update(ctx, item, matches)
            elif matches:
                _plan_create_anyway(item, existing)
            else:
                item.errors = _new_lead_problems(values)
                if item.errors:
                    item.action = "fail"
        if item.action == "create":
            state = _pending_lead(item)
            item.existing = None
            item.state = state
            for key in keys:
                seen[key] = (record.line, state)
        elif item.action == "update":
            state = item.existing
            for name, (_old, new) in item.changes.items():
                state[name] = new
            state["bumps"] = state.get("bumps", 0) + 1
            for key in keys + [(name, state[name]) for name in ("email", "phone") if state[name]]:
                seen[key] = (record.line, state)
        planned.append(item)
    return planned, None


def _plan_update(ctx, item, matches):
    if len(matches) > 1:
        ids = " and ".join(f"#{pk}" for pk in sorted(matches))
        item.action, item.errors = (
            "fail",
            [f"The e-mail and the phone belong to two different leads ({ids})."],
        )
        return
    lead = next(iter(matches.values()))
    item.existing = lead
    rights = ctx.rights.get(lead["owner_id"])
    if rights is None:
        # The policies look at a live lead's owner only: asked once per owner, not per row.
        probe = Lead(pk=lead["pk"], owner_id=lead["owner_id"], deleted_at=None)
        rights = ctx.rights[lead["owner_id"]] = (
            policies.can_edit(ctx.actor, probe),
            policies.can_view(ctx.actor, probe),
        )
    if not rights[0]:
        who = f"Lead #{lead['pk']}" if rights[1] else "A lead you cannot see"
        item.action, item.errors = (
            "fail",
            [f"{who} already has this e-mail or phone and you cannot update it."],
        )
        return
    for name in _UPDATABLE:
        if name not in item.values["given"]:
            continue
        new = item.values[name]
        old = lead["source"] if name == "source" else lead[name]
        if name == "source":
            new = new.pk
        if new != old:
            item.changes[name] = (old, new)
    item.action = "update" if item.changes else "skip"
    if not item.changes:
        item.note = f"Lead #{lead['pk']} already has these values."


def _plan_create_anyway(item, existing):
    """ "Create anyway": live leads keep e-mails and phones unique, so a clashing one goes into the notes."""
    item.values = dict(item.values)  # the record's cleaned values stay as they were, for a re-plan
    moved = []
    for name, label in (("email", "e-mail"), ("phone", "phone")):
        value = item.values.get(name)
        if value and (name, value) in existing:
            moved.append(f"Also {label} {value} (lead #{existing[(name, value)]['pk']} has it).")
            item.values[name] = ""
    if not item.values.get("email") and not item.values.get("phone"):
        item.action = "fail"
        item.errors = ["Another lead already has this e-mail and phone; a new lead needs one of its own."]
        return
    item.values["notes"] = "\n".join(filter(None, [item.values.get("notes", ""), *moved]))
    item.note = " ".join(moved)
    item.errors = _new_lead_problems(item.values)
    if item.errors:
        item.action = "fail"


# --- preview ----------------------------------------------------------------------------------


def preview(job, *, mapping=None, defaults=None, duplicate_mode=None, limit=PREVIEW_ROWS) -> list:
    """The first `limit` rows as the import would treat them now; writes nothing."""
    ctx = _Context(job, mapping=mapping, defaults=defaults, duplicate_mode=duplicate_mode)
    records = []
    for record in _Reader(job):
        records.append(record)
        if len(records) >= limit:
            break
    rows = []
    while records:
        planned, cut = _plan(ctx, records)
        rows.extend(planned)
        if cut is None:
            break
        # A row that would update a lead an earlier row creates: show it as an update of that row.
        record = records[cut]
        rows.append(_Planned(record.line, record.cells, {}, ctx.duplicate_mode))
        records = records[cut + 1 :]
    return [_preview_row(item) for item in rows]


def _preview_row(item):
    shown = {}
    for name, value in item.values.items():
        if name == "given":
            continue
        if name == "owner":
            shown["owner_email"] = value.email if value is not None else ""
        else:
            shown[name] = _display(value) if value is not None else ""
    if item.changes:
        shown["changes"] = {
            name: {"from": _display(old), "to": _display(new)} for name, (old, new) in item.changes.items()
        }
    errors = list(item.errors)
    return PreviewRow(
        line=item.line,
        cells=list(item.cells),
        values=shown,
        errors=errors,
        action=item.action,
        existing_id=item.existing["pk"] if item.existing else None,
    )


# --- configuring and queueing -----------------------------------------------------------------


def configure_import(*, job, actor, mapping, defaults, duplicate_mode) -> ImportJob:
    """Check and save the user's mapping, defaults and duplicate rule; the job stays in MAPPING."""
    if not policies.can_view_import(actor, job):
        raise PermissionDenied("You cannot change this import.")
    if job.status != ImportJob.Status.MAPPING:
        raise ValidationError({"mapping": ["This import has already been started."]})
    errors = {}
    clean_mapping = {}
    for index, name in (mapping or {}).items():
        if name in ("", None):
            continue
        column = _int(index)
        if column is None or not 0 <= column < len(job.headers):
            errors.setdefault("mapping", []).append(f"There is no column {index}.")
        elif name not in IMPORT_FIELDS:
            errors.setdefault("mapping", []).append(f"“{name}” is not a field a column can fill.")
        elif name in clean_mapping.values():
            errors.setdefault("mapping", []).append(
                f"Two columns are mapped to {FIELD_LABELS[name]}; keep one."
            )
        else:
            clean_mapping[str(column)] = name
    fields = set(clean_mapping.values())
    if "mapping" not in errors:
        if not fields & {"name", "first_name", "last_name"}:
            errors.setdefault("mapping", []).append("Map a column to Name, or to First name / Last name.")
        if not fields & {"email", "phone"}:
            errors.setdefault("mapping", []).append("Map a column to E-mail or Phone.")
    clean_defaults = {}
    for key, value in (defaults or {}).items():
        if value in ("", None):
            continue
        pk = _int(value)
        if key == "source":
            ok = Source.objects.filter(pk=pk, archived=False).exists() if pk else False
            message = "Choose a source that exists and is not archived."
        elif key == "stage":
            ok = (
                Stage.objects.filter(pk=pk, archived=False).exclude(kind=Stage.Kind.LOST).exists()
                if pk
                else False
            )
            message = "Choose a stage that exists, is not archived and is not a lost stage."
        elif key == "owner":
            ok = get_user_model().objects.filter(pk=pk, is_active=True).exists() if pk else False
            message = "Choose an active user as the default owner."
            if ok and not policies.is_manager(actor) and pk != actor.pk:
                ok, message = False, "Your imported leads are yours; only managers choose another owner."
        else:
            ok, message = False, f"“{key}” cannot have a default."
        if ok:
            clean_defaults[key] = pk
        else:
            errors.setdefault("defaults", []).append(message)
    if duplicate_mode not in ImportJob.DuplicateMode.values:
        errors["duplicate_mode"] = ["Choose skip, update or create."]
    if errors:
        raise ValidationError(errors)
    job.mapping, job.defaults, job.duplicate_mode = clean_mapping, clean_defaults, duplicate_mode
    job.save(update_fields=["mapping", "defaults", "duplicate_mode"])
    return job


def queue_import(*, job, actor) -> ImportJob:
    """Start the import in the background (in-process with the default tasks backend)."""
    from leads.tasks import run_import_task

    if not policies.can_view_import(actor, job):
        raise PermissionDenied("You cannot start this import.")
    with transaction.atomic():
        updated = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.MAPPING).update(
            status=ImportJob.Status.QUEUED
        )
        if not updated:
            raise ValidationError({"status": ["This import has already been started."]})
        job_id = job.pk
        transaction.on_commit(lambda: run_import_task.enqueue(job_id))
    job.refresh_from_db()
    return job


# --- the worker -------------------------------------------------------------------------------


def _claim(job_id):
    """Make the job RUNNING for this worker, or None when it is not ours to run.

    Queued jobs, failed ones and running ones whose heartbeat is stale (a dead worker) may be
    taken; the conditional UPDATE lets only one of two workers win.
    """
    now = timezone.now()
    takeable = Q(status=ImportJob.Status.QUEUED) | Q(status=ImportJob.Status.FAILED)
    takeable |= Q(status=ImportJob.Status.RUNNING) & (
        Q(heartbeat_at__lt=now - STALE_AFTER) | Q(heartbeat_at__isnull=True)
    )
    claimed = ImportJob.objects.filter(takeable, pk=job_id).update(
        status=ImportJob.Status.RUNNING, heartbeat_at=now, error=""
    )
    if not claimed:
        return None
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    if job.started_at is None:
        job.started_at = now
        job.save(update_fields=["started_at"])
    return job


def _count_rows(job):
    count = 0
    for record in _Reader(job):
        if record.cells is None or any(record.cells):
            count += 1
    return count


def run_import(job_id) -> ImportJob:
    """Import (or continue importing) the job's rows, batch by batch; returns the job as it ended."""
    job = _claim(job_id)
    if job is None:
        return ImportJob.objects.get(pk=job_id)
    prefetch = None
    try:
        if job.total_rows is None:
            job.total_rows = _count_rows(job)
            ImportJob.objects.filter(pk=job.pk).update(total_rows=job.total_rows)
        ctx = _Context(job, create_missing_source=True)
        prefetch = _Prefetch(ctx, _Reader(job, skip=job.resume_line), max(1, settings.IMPORT_BATCH_SIZE))
        batch = []
        for cleaned in prefetch:
            if _cancelled(job):
                return _finish(job, ImportJob.Status.CANCELLED)
            # Rows a cut batch left over go first (see _plan), then the next cleaned batch.
            batch = _run_batch(ctx, batch + cleaned)
        while batch:
            if _cancelled(job):
                return _finish(job, ImportJob.Status.CANCELLED)
            batch = _run_batch(ctx, batch)
        return _finish(job, ImportJob.Status.DONE)
    except Exception as exc:
        logger.exception("Import %s failed at record %s", job.pk, job.resume_line)
        job.error = f"The import stopped at line {job.resume_line + 2}: {type(exc).__name__}: {exc}"[:2000]
        return _finish(job, ImportJob.Status.FAILED)
    finally:
        if prefetch is not None:
            prefetch.stop()


class _Prefetch:
    """The file's rows, read and cleaned in a thread one or two batches ahead of the writer.

    Cleaning (CSV parsing, e-mail and phone validation) is pure Python and needs nothing from the
    database, while writing a batch mostly waits for PostgreSQL (psycopg releases the GIL while it
    waits): doing both at once makes an import take about as long as the slower of the two
    instead of their sum (bench_import). Only cleaning moves here: planning looks up duplicates
    and must see the batches committed before it, so it stays with the writer, in file order.
    The queue is bounded, so memory stays at a few batches whatever the file's size.
    """

    DEPTH = 2  # batches cleaned ahead of the one being written

    def __init__(self, ctx, reader, size):
        self.ctx, self.reader, self.size = ctx, reader, size
        self.queue = queue.Queue(maxsize=self.DEPTH)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._produce, name=f"import-{ctx.job.pk}-reader", daemon=True)
        self.thread.start()

    def __iter__(self):
        while True:
            try:
                kind, value = self.queue.get(timeout=1)
            except queue.Empty:
                if self.thread.is_alive() or not self.queue.empty():
                    continue
                # Gone without a word (it reports every exception): never wait for it for ever.
                raise RuntimeError("The import's reader thread stopped unexpectedly.") from None
            if kind == "batch":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def stop(self):
        """Called when the writer ends, however it ends: the reader thread stops at its next batch."""
        self.stopped.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()  # room for a put the thread may be blocked in
            except queue.Empty:
                pass
            self.thread.join(timeout=0.05)

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self):
        records = iter(self.reader)
        try:
            batch = []
            for record in records:
                if record.cells is not None and not any(record.cells):
                    continue  # a blank line: nothing to import (resume_line still counts it)
                record.cleaned = _cleaned(self.ctx, record)
                batch.append(record)
                if len(batch) >= self.size:
                    record.offset = self.reader.bytes_read
                    if not self._put(("batch", batch)):
                        return
                    batch = []
            if batch:
                batch[-1].offset = self.reader.bytes_read
                if not self._put(("batch", batch)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # handed to the writer, which fails the job with it
            self._put(("error", exc))
        finally:
            records.close()


def _cancelled(job):
    return ImportJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _finish(job, status):
    job.status = status
    job.finished_at = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, finished_at=job.finished_at, error=job.error, heartbeat_at=job.finished_at
    )
    job.refresh_from_db()
    return job


def _run_batch(ctx, records):
    """Commit the batch (or its first part, see _plan's cut); returns the records left over."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                planned, cut = _plan(ctx, records, lock=ctx.duplicate_mode == ImportJob.DuplicateMode.UPDATE)
                done = records if cut is None else records[:cut]
                _write(ctx, planned, done[-1])
            return [] if cut is None else records[cut:]
        except IntegrityError:
            # Someone took an e-mail or phone between our lookup and our insert: look again.
            logger.info("Import %s: a concurrent writer took a contact; retrying the batch", ctx.job.pk)
    return _run_batch_row_by_row(ctx, records)


def _run_batch_row_by_row(ctx, records):
    """Last resort after repeated conflicts: each row in its own savepoint, so none is lost."""
    with transaction.atomic():
        planned, cut = _plan(ctx, records, lock=True, sequential=False)
        done = records if cut is None else records[:cut]
        results = []
        for item in planned:
            try:
                with transaction.atomic():
                    results.extend(_write_rows(ctx, [item]))
            except IntegrityError:
                item.action, item.errors = "fail", ["Another lead took this e-mail or phone while importing."]
                results.extend(_write_rows(ctx, [item]))
        _write_job(ctx, planned, done[-1], results)
    return [] if cut is None else records[cut:]


def _write(ctx, planned, last):
    lead_ids = _write_rows(ctx, planned)
    _write_job(ctx, planned, last, lead_ids)


_LEAD_COPY_COLUMNS = (
    "id", "first_name", "last_name", "email", "phone", "company", "title", "source_id", "owner_id",
    "stage_id", "stage_changed_at", "lost_reason", "value", "priority", "notes", "created_by_id",
    "created_at", "updated_at", "version",
)  # fmt: skip
_TEXT_UPDATABLE = ("first_name", "last_name", "email", "phone", "company", "title", "notes")
_UPDATE_SQL = (
    "UPDATE leads_lead AS l SET "
    + ", ".join(f"{name} = v.{name}" for name in _TEXT_UPDATABLE)
    + ", source_id = v.source_id, value = v.value, version = l.version + v.bumps, updated_at = %s "
    "FROM unnest(%s::bigint[], "
    + ", ".join("%s::text[]" for _name in _TEXT_UPDATABLE)
    + ", %s::bigint[], %s::numeric[], %s::int[]) AS v(id, "
    + ", ".join(_TEXT_UPDATABLE)
    + ", source_id, value, bumps) WHERE l.id = v.id"
)


def _write_rows(ctx, planned):
    """Write one batch's leads, records, activities and errors; returns the touched lead ids.

    The number of statements does not depend on the batch's size. On PostgreSQL the rows go in
    with COPY (ids for new leads reserved first with nextval), which costs far less Python per
    value than bulk_create; SQLite, which has no COPY, takes the bulk_create path.
    """
    job, actor, now = ctx.job, ctx.actor, timezone.now()
    creates = [item for item in planned if item.action == "create"]
    # Each lead an update changes, once, as the batch leaves it (rows may update one lead twice).
    updated = {}
    for item in planned:
        if item.action == "update" and item.existing.get("pending") is None:
            updated.setdefault(id(item.existing), item.existing)
    postgres = connection.vendor == "postgresql"
    if postgres:
        _copy_leads(ctx, creates, list(updated.values()), now)
    else:
        _bulk_create_leads(ctx, creates, list(updated.values()), now)
    records, activities, failures = [], [], []
    body = f"Imported from {job.filename} (import #{job.pk})"
    for item in planned:
        if item.action == "create":
            lead_id = item.state["pk"]
            records.append((job.pk, lead_id, ImportRecord.Action.CREATED, item.line, "{}"))
            activities.append((lead_id, _created_data(ctx, item)))
        elif item.action == "update":
            lead_id = item.existing["pk"]
            changes = {
                name: {"from": _shown(ctx, name, old), "to": _shown(ctx, name, new)}
                for name, (old, new) in item.changes.items()
            }
            old_values = {name: change["from"] for name, change in changes.items()}
            records.append((job.pk, lead_id, ImportRecord.Action.UPDATED, item.line, old_values))
            data = {"job_id": job.pk, "line": item.line, "action": "updated", "changes": changes}
            activities.append((lead_id, data))
        elif item.action == "fail":
            failures.append((job.pk, item.line, _storable(item.cells), " ".join(item.errors)))
    kind, actor_id = Activity.Kind.IMPORTED, actor.pk if actor else None
    if postgres:
        with connection.cursor() as cursor, connection.wrap_database_errors:
            if records:
                columns = ("job_id", "lead_id", "action", "line", "old_values")
                rows = (
                    (j, lead, a, line, old if isinstance(old, str) else _json(old))
                    for j, lead, a, line, old in records
                )
                _copy(cursor, "leads_importrecord", columns, rows)
                columns = ("lead_id", "actor_id", "kind", "body", "data", "occurred_at")
                rows = (
                    (lead, actor_id, kind, body, data if isinstance(data, str) else _json(data), now)
                    for lead, data in activities
                )
                _copy(cursor, "leads_activity", columns, rows)
            if failures:
                _copy(cursor, "leads_importrowerror", ("job_id", "line", "raw", "reason"),
                      ((j, line, _json(raw), reason) for j, line, raw, reason in failures))  # fmt: skip
    else:
        if records:
            ImportRecord.objects.bulk_create(
                ImportRecord(job_id=j, lead_id=lead, action=a, line=line, old_values=_loaded(old))
                for j, lead, a, line, old in records
            )
            Activity.objects.bulk_create(
                Activity(
                    lead_id=lead, actor_id=actor_id, kind=kind, body=body, data=_loaded(data), occurred_at=now
                )
                for lead, data in activities
            )
        if failures:
            ImportRowError.objects.bulk_create(
                ImportRowError(job_id=j, line=line, raw=raw, reason=reason)
                for j, line, raw, reason in failures
            )
    return [item.state["pk"] for item in creates] + [lead["pk"] for lead in updated.values()]


_json = json.JSONEncoder(ensure_ascii=False).encode


def _loaded(data):
    return json.loads(data) if isinstance(data, str) else data


def _created_data(ctx, item):
    """The `imported` activity's data for a lead the import creates, as JSON text.

    Rows differ only in their line (and a rare note), so the part naming the source, stage and
    owner is encoded once per combination, not once per row (a large share of the writer's
    Python time otherwise, on the critical path of every batch).
    """
    values = item.values
    fragment = _created_fragment(ctx, values["source"], values["stage"], values["owner"])
    note = f', "note": {_json(item.note)}' if item.note else ""
    return f'{{"job_id": {ctx.job.pk}, "line": {item.line}, "action": "created", {fragment}{note}}}'


def _created_fragment(ctx, source, stage, owner):
    key = (source.pk, stage.pk, owner.pk if owner else None)
    fragment = ctx.created_fragments.get(key)
    if fragment is None:
        # check_integrity reads the ids: names change, ids do not.
        fragment = _json(
            {
                "source": source.name,
                "stage": stage.name,
                "owner": str(owner) if owner else None,
                "stage_id": stage.pk,
                "owner_id": owner.pk if owner else None,
            }
        )[1:-1]
        ctx.created_fragments[key] = fragment
    return fragment


def _copy(cursor, table, columns, rows):
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _lead_row(ctx, item, now):
    state, values = item.state, item.values
    return (
        state["pk"], state["first_name"], state["last_name"], state["email"], state["phone"],
        state["company"], state["title"], state["source"], state["owner_id"], values["stage"].pk,
        now, "", state["value"], Lead.Priority.NORMAL, state["notes"], ctx.actor.pk if ctx.actor else None,
        now, now, 1 + state.get("bumps", 0),
    )  # fmt: skip


def _copy_leads(ctx, creates, updated, now):
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if creates:
            if ctx.lead_sequence is None:
                cursor.execute("SELECT pg_get_serial_sequence('leads_lead', 'id')")
                ctx.lead_sequence = cursor.fetchone()[0]
            cursor.execute(
                "SELECT nextval(%s) FROM generate_series(1, %s)", [ctx.lead_sequence, len(creates)]
            )
            for item, (pk,) in zip(creates, cursor.fetchall(), strict=True):
                item.state["pk"] = pk
            _copy(cursor, "leads_lead", _LEAD_COPY_COLUMNS, (_lead_row(ctx, item, now) for item in creates))
        if updated:
            params = [now, [lead["pk"] for lead in updated]]
            params += [[lead[name] for lead in updated] for name in _TEXT_UPDATABLE]
            params += [[lead["source"] for lead in updated], [lead["value"] for lead in updated]]
            params.append([lead["bumps"] for lead in updated])
            cursor.execute(_UPDATE_SQL, params)


def _bulk_create_leads(ctx, creates, updated, now):
    fields = [field.attname for field in Lead._meta.concrete_fields]
    new_leads = []
    for item in creates:
        row = dict(zip(_LEAD_COPY_COLUMNS, _lead_row(ctx, item, now), strict=True))
        new_leads.append(Lead(**{name: row[name] for name in fields if name in row}))
    if new_leads:
        Lead.objects.bulk_create(new_leads)
        for item, lead in zip(creates, new_leads, strict=True):
            item.state["pk"] = lead.pk
    if updated:
        changed = []
        for state in updated:
            lead = Lead(pk=state["pk"], source_id=state["source"], version=F("version") + state["bumps"])
            for name in _UPDATABLE:
                if name != "source":
                    setattr(lead, name, state[name])
            lead.updated_at = now
            changed.append(lead)
        names = [("source_id" if name == "source" else name) for name in _UPDATABLE]
        Lead.objects.bulk_update(changed, [*names, "version", "updated_at"])


def _storable(cells):
    # jsonb refuses \u0000; the report shows such a character as U+FFFD.
    return [cell.replace("\x00", "\ufffd") if "\x00" in cell else cell for cell in cells]


def _shown(ctx, name, value):
    if name == "source":
        source = ctx.sources_by_id.get(value)
        return source.name if source else None
    return _display(value)


def _write_job(ctx, planned, last, lead_ids):
    job = ctx.job
    for item in planned:
        if item.action == "create":
            job.created_count += 1
        elif item.action == "update":
            job.updated_count += 1
        elif item.action == "skip":
            job.skipped_count += 1
        else:
            job.failed_count += 1
    job.rows_done += len(planned)
    job.resume_line = last.index
    if last.offset is not None:  # else the batch was cut short: the offset stays where it was
        job.resume_offset = last.offset
    job.heartbeat_at = timezone.now()
    counters = ("rows_done", "created_count", "updated_count", "skipped_count", "failed_count")
    ImportJob.objects.filter(pk=job.pk).update(
        resume_line=job.resume_line,
        resume_offset=job.resume_offset,
        heartbeat_at=job.heartbeat_at,
        **{name: getattr(job, name) for name in counters},
    )
    if lead_ids:
        # One event for the whole batch: open boards reload their columns once.
        announce(
            "leads.imported", lead=Lead(pk=lead_ids[0]), actor=ctx.actor, job_id=job.pk, lead_ids=lead_ids
        )


# --- cancel, revert, reports ---------------------------------------------------------------------


def cancel_import(*, job, actor) -> ImportJob:
    """Stop an import between batches; what was committed stays (revert it to undo that too)."""
    if not policies.can_cancel_import(actor, job):
        raise PermissionDenied("You cannot cancel this import.")
    now = timezone.now()
    not_started = Q(status__in=[ImportJob.Status.MAPPING, ImportJob.Status.QUEUED])
    dead = Q(status=ImportJob.Status.RUNNING) & (
        Q(heartbeat_at__lt=now - STALE_AFTER) | Q(heartbeat_at__isnull=True)
    )
    # No worker will look at a job that is not running (or whose worker died): end it here.
    ended = ImportJob.objects.filter(
        not_started | dead | Q(status=ImportJob.Status.FAILED), pk=job.pk
    ).update(status=ImportJob.Status.CANCELLED, cancel_requested=True, finished_at=now)
    if not ended:
        running = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
            cancel_requested=True
        )
        if not running:
            raise ValidationError({"status": ["This import has already finished."]})
    job.refresh_from_db()
    return job


def revert_import(*, job, actor) -> ImportJob:
    """Undo an import: soft-delete the leads it created, restore the fields it updated.

    A field someone changed since the import keeps their value; the job gets `revert_summary`
    {"deleted", "restored", "kept"} (kept: updated leads left as they are, in whole or in part).
    """
    if not policies.can_revert_import(actor, job):
        raise PermissionDenied("Only managers can revert an import.")
    if job.status not in (ImportJob.Status.DONE, ImportJob.Status.CANCELLED, ImportJob.Status.FAILED):
        raise ValidationError({"status": ["Only a finished import can be reverted."]})
    since = job.finished_at or job.created_at
    if since < timezone.now() - timedelta(days=settings.IMPORT_REVERT_DAYS):
        raise ValidationError(
            {"status": [f"Imports can be reverted for {settings.IMPORT_REVERT_DAYS} days only."]}
        )
    claimed = ImportJob.objects.filter(pk=job.pk, status=job.status).update(
        status=ImportJob.Status.REVERTED, reverted_at=timezone.now(), reverted_by=actor
    )
    if not claimed:
        raise ValidationError({"status": ["This import is being reverted already."]})
    summary = {"deleted": 0, "restored": 0, "kept": 0}
    reason = f"Import #{job.pk} ({job.filename}) reverted"
    size = max(1, settings.IMPORT_BATCH_SIZE)
    created = ImportRecord.objects.filter(job=job, action=ImportRecord.Action.CREATED).order_by("pk")
    last = 0
    while True:
        chunk = list(created.filter(pk__gt=last).values_list("pk", "lead_id")[:size])
        if not chunk:
            break
        last = chunk[-1][0]
        with transaction.atomic():
            summary["deleted"] += _revert_created(actor, [lead_id for _pk, lead_id in chunk], reason, job)
    # Newest update first: a lead an import updated twice ends with the value it had before both.
    updated = ImportRecord.objects.filter(job=job, action=ImportRecord.Action.UPDATED).order_by("-pk")
    last = None
    while True:
        page = updated if last is None else updated.filter(pk__lt=last)
        chunk = list(page[:size])
        if not chunk:
            break
        last = chunk[-1].pk
        with transaction.atomic():
            restored, kept = _revert_updated(actor, chunk, reason, job)
        summary["restored"] += restored
        summary["kept"] += kept
    job.refresh_from_db()
    job.revert_summary = summary
    return job


def _revert_created(actor, lead_ids, reason, job):
    now = timezone.now()
    live = list(
        Lead.objects.select_for_update(of=("self",))
        .filter(pk__in=lead_ids, deleted_at__isnull=True)
        .values_list("pk", flat=True)
    )
    if not live:
        return 0
    Lead.objects.filter(pk__in=live).update(deleted_at=now, version=F("version") + 1, updated_at=now)
    Activity.objects.bulk_create(
        [
            Activity(
                lead_id=pk,
                actor=actor,
                kind=Activity.Kind.DELETED,
                body=reason,
                data={"import_id": job.pk},
                occurred_at=now,
            )
            for pk in live
        ]
    )
    announce("leads.import_reverted", lead=Lead(pk=live[0]), actor=actor, job_id=job.pk, lead_ids=live)
    return len(live)


def _revert_updated(actor, records, reason, job):
    now = timezone.now()
    ids = {record.lead_id for record in records}
    leads = {
        lead.pk: lead
        for lead in Lead.objects.select_for_update(of=("self",)).filter(pk__in=ids, deleted_at__isnull=True)
    }
    imported = {}
    for activity in Activity.objects.filter(lead_id__in=ids, kind=Activity.Kind.IMPORTED).only(
        "lead_id", "data"
    ):
        if activity.data.get("job_id") == job.pk and activity.data.get("action") == "updated":
            imported[(activity.lead_id, activity.data.get("line"))] = activity.data.get("changes", {})
    sources = {source.name: source for source in Source.objects.all()}
    restored_ids, kept, activities, touched = [], 0, [], {}
    for record in records:
        lead = leads.get(record.lead_id)
        changes = imported.get((record.lead_id, record.line), {})
        if lead is None:
            kept += 1
            continue
        diff = {}
        for name, old in record.old_values.items():
            current = _display(getattr(lead, name))
            if name not in changes or current != changes[name]["to"]:
                continue  # changed since the import: theirs stays
            value = sources.get(old) if name == "source" else (Decimal(old) if name == "value" else old)
            if name == "source" and value is None:
                continue
            setattr(lead, name, value)
            diff[name] = {"from": current, "to": old}
        if len(diff) < len(record.old_values):
            kept += 1
        if diff:
            touched[lead.pk] = lead
            activities.append(
                Activity(
                    lead=lead,
                    actor=actor,
                    kind=Activity.Kind.UPDATED,
                    body=reason,
                    data={"changes": diff, "import_id": job.pk},
                    occurred_at=now,
                )
            )
            restored_ids.append(lead.pk)
    if touched:
        _ensure_restorable(touched)
        names = sorted({name for activity in activities for name in activity.data["changes"]})
        for lead in touched.values():
            lead.version = F("version") + 1
            lead.updated_at = now
        Lead.objects.bulk_update(list(touched.values()), [*names, "version", "updated_at"])
        Activity.objects.bulk_create(activities)
        announce(
            "leads.import_reverted",
            lead=next(iter(touched.values())),
            actor=actor,
            job_id=job.pk,
            lead_ids=list(touched),
        )
    return len(restored_ids), kept


def _ensure_restorable(touched):
    """An old e-mail/phone another live lead has taken since stays as it is now (checked, not crashed on)."""
    for name in ("email", "phone"):
        values = {getattr(lead, name): pk for pk, lead in touched.items() if getattr(lead, name)}
        if not values:
            continue
        taken = (
            Lead.objects.live()
            .exclude(**{name: ""})
            .filter(**{f"{name}__in": list(values)})
            .exclude(pk__in=list(touched))
        )
        for value in taken.values_list(name, flat=True):
            lead = touched[values[value]]
            setattr(lead, name, Lead.objects.filter(pk=lead.pk).values_list(name, flat=True)[0])


def error_report_rows(job):
    """The error report CSV's rows: the file's headers + line + reason, then each failed row."""
    yield [*job.headers, "line", "reason"]
    for error in ImportRowError.objects.filter(job=job).order_by("line", "pk").iterator(chunk_size=2000):
        yield [*error.raw, error.line, error.reason]


def job_progress(job) -> dict:
    """How far the job is, for the progress page and its polling endpoint."""
    total = job.total_rows
    done = job.rows_done
    if total:
        percent = min(100, int(done * 100 / total))
    elif job.size:
        percent = min(100, int(job.resume_offset * 100 / job.size))
    else:
        percent = 0
    finished = job.status in (
        ImportJob.Status.DONE,
        ImportJob.Status.FAILED,
        ImportJob.Status.CANCELLED,
        ImportJob.Status.REVERTED,
    )
    if finished and job.status == ImportJob.Status.DONE:
        percent = 100
    rate = None
    seconds_left = None
    if job.started_at and done:
        end = job.finished_at if finished and job.finished_at else (job.heartbeat_at or timezone.now())
        elapsed = (end - job.started_at).total_seconds()
        if elapsed > 0:
            rate = round(done / elapsed, 1)
            if total and not finished:
                seconds_left = int(max(0, total - done) / rate) if rate else None
    return {
        "status": job.status,
        "status_label": job.get_status_display(),
        "total_rows": total,
        "rows_done": done,
        "percent": percent,
        "rate_per_second": rate,
        "seconds_left": seconds_left,
        "created": job.created_count,
        "updated": job.updated_count,
        "skipped": job.skipped_count,
        "failed": job.failed_count,
        "finished": finished,
    }
