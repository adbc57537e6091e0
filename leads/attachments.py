"""Files on leads: upload validation by content, and the services that add and remove attachments."""

import codecs
import os
import re
import unicodedata
import zipfile

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from leads import policies
from leads.events import announce
from leads.models import Activity, Attachment
from leads.services import _locked, _record

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_FILENAME_LENGTH = 120

PDF = "application/pdf"
DOC = "application/msword"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
TXT = "text/plain"
PNG = "image/png"
JPEG = "image/jpeg"

# What each accepted content type is called in messages, and the extensions it may carry.
TYPE_LABELS = {
    PDF: "a PDF",
    DOC: "a Word document (DOC)",
    DOCX: "a Word document (DOCX)",
    ODT: "an OpenDocument text (ODT)",
    TXT: "a plain text file",
    PNG: "a PNG image",
    JPEG: "a JPEG image",
}
EXTENSIONS = {
    ".pdf": PDF,
    ".doc": DOC,
    ".docx": DOCX,
    ".odt": ODT,
    ".txt": TXT,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
}
ACCEPTED = "Accepted files: PDF, Word (DOC, DOCX), OpenDocument text (ODT), plain text (TXT), PNG and JPEG."
ACCEPT_ATTRIBUTE = ",".join([*EXTENSIONS, *TYPE_LABELS])  # for <input type=file accept=...>

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_UNSAFE_NAME_CHARS = re.compile(r'[<>:"/\\|?*;\x00-\x1f\x7f]')
_WHITESPACE = re.compile(r"\s+")


def max_upload_bytes():
    return getattr(settings, "ATTACHMENT_MAX_BYTES", DEFAULT_MAX_BYTES)


def _refuse(message):
    return ValidationError({"file": [message]})


def safe_filename(raw_name):
    """A readable file name with no directories, control or shell-special characters, length capped.

    Browsers on Windows send "C:\\path\\cv.pdf", hostile clients "../../etc/passwd.pdf": only
    the last component counts, and it is never used as a storage path anyway (that is random).
    """
    name = unicodedata.normalize("NFC", str(raw_name or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = _WHITESPACE.sub(" ", name).strip()
    stem, dot, extension = name.rpartition(".")
    if dot and extension.isalnum() and len(extension) <= 10:
        extension = f".{extension.lower()}"
    else:
        stem, extension = name, ""
    # No leading dots (hidden files, "..") and no trailing ones (Windows drops them).
    stem = stem.strip(" .") or "file"
    stem = stem[: MAX_FILENAME_LENGTH - len(extension)].rstrip(" .") or "file"
    return f"{stem}{extension}"


def _size_of(uploaded_file):
    size = getattr(uploaded_file, "size", None)
    if size is None:
        uploaded_file.seek(0, os.SEEK_END)
        size = uploaded_file.tell()
    return size


def _zip_kind(uploaded_file):
    """DOCX or ODT when the file is a zip laid out like one, else None. Reads the directory only."""
    uploaded_file.seek(0)
    try:
        with zipfile.ZipFile(uploaded_file) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                info = archive.getinfo("mimetype")
                if info.file_size <= 100:
                    mimetype = archive.read(info).strip()
                    if mimetype == ODT.encode():
                        return ODT
            if {"word/document.xml", "[Content_Types].xml"} <= names:
                return DOCX
    except Exception:  # any broken archive (zlib, lzma and struct errors too) is simply not a document
        return None
    return None


def _is_utf8_text(uploaded_file):
    decoder = codecs.getincrementaldecoder("utf-8")()
    uploaded_file.seek(0)
    try:
        while chunk := uploaded_file.read(64 * 1024):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sniff_content_type(uploaded_file):
    """The accepted type the bytes actually are, or None."""
    uploaded_file.seek(0)
    head = uploaded_file.read(32)
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(_OLE2_MAGIC):
        return DOC
    if head.startswith(_PNG_MAGIC) and head[12:16] == b"IHDR":
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(uploaded_file)
    if _is_utf8_text(uploaded_file):
        return TXT
    return None


def validate_upload(uploaded_file):
    """(safe_name, content_type) for an acceptable file; ValidationError({"file": [...]}) otherwise.

    The type is decided by the bytes, and the name's extension must agree with them, so a
    script renamed to .pdf or a PDF renamed to .png is refused. The content type returned is
    ours, never the one the client claimed.
    """
    if uploaded_file is None:
        raise _refuse(f"Choose a file to upload. {ACCEPTED}")
    safe_name = safe_filename(getattr(uploaded_file, "name", ""))
    extension = os.path.splitext(safe_name)[1]
    expected = EXTENSIONS.get(extension)
    if expected is None:
        shown = extension or "no extension"
        raise _refuse(f"“{safe_name}” has {shown}, which is not an accepted file type. {ACCEPTED}")
    size = _size_of(uploaded_file)
    limit = max_upload_bytes()
    if size > limit:
        raise _refuse(f"“{safe_name}” is too large: files can be at most {_megabytes(limit)}.")
    if size == 0:
        raise _refuse(f"“{safe_name}” is empty (0 bytes). {ACCEPTED}")
    try:
        actual = sniff_content_type(uploaded_file)
    finally:
        uploaded_file.seek(0)
    if actual is None:
        raise _refuse(
            f"“{safe_name}” is not {TYPE_LABELS[expected]} inside, nor any file we accept. {ACCEPTED}"
        )
    if actual != expected:
        raise _refuse(
            f"“{safe_name}” is named like {TYPE_LABELS[expected]} but its contents are "
            f"{TYPE_LABELS[actual]}; rename it to match, or upload the right file. {ACCEPTED}"
        )
    return safe_name, actual


def _megabytes(size):
    megabytes = size / (1024 * 1024)
    return f"{megabytes:.0f} MB" if megabytes >= 10 or megabytes == int(megabytes) else f"{megabytes:.1f} MB"


def add_attachment(*, lead, file, actor, record=True):
    """Store `file` on the lead at a random path and record it (actor None: the public form).

    record=False leaves the timeline to the caller (the capture form mentions the file in its
    own activity); the event is announced either way.
    """
    if not policies.can_attach(actor, lead):
        raise PermissionDenied("You cannot attach files to this lead.")
    safe_name, content_type = validate_upload(file)
    size = _size_of(file)
    attachment = Attachment(filename=safe_name, content_type=content_type, size=size, uploaded_by=actor)
    stored = False
    try:
        with transaction.atomic():
            # Judge the lead as it is now (deleted or reassigned since the caller read it?).
            current = _locked(lead)
            if not policies.can_attach(actor, current):
                raise PermissionDenied("You cannot attach files to this lead.")
            attachment.lead = current
            file.seek(0)
            attachment.file.save(safe_name, file, save=False)
            stored = True
            attachment.save()
            if record:
                _record(
                    lead=current,
                    actor=actor,
                    kind=Activity.Kind.ATTACHMENT_ADDED,
                    body=safe_name,
                    data={
                        "attachment_id": attachment.pk,
                        "filename": safe_name,
                        "size": size,
                        "content_type": content_type,
                    },
                )
            announce("attachment.added", lead=current, actor=actor, attachment_id=attachment.pk)
    except BaseException:
        # The row was rolled back; do not leave its file behind in storage.
        if stored:
            attachment.file.delete(save=False)
        raise
    return attachment


def delete_attachment(*, attachment, actor):
    """Soft delete: the file leaves the lead page and downloads, but stays stored and recorded."""
    with transaction.atomic():
        current = (
            Attachment.objects.select_for_update(of=("self",))
            .select_related("lead", "uploaded_by")
            .get(pk=attachment.pk)
        )
        if not policies.can_delete_attachment(actor, current):
            raise PermissionDenied("Only managers, the uploader or the lead's owner can delete this file.")
        if current.deleted_at is not None:
            raise ValidationError({"file": ["This file is already deleted."]})
        current.deleted_at = timezone.now()
        current.deleted_by = actor
        current.save(update_fields=["deleted_at", "deleted_by"])
        _record(
            lead=current.lead,
            actor=actor,
            kind=Activity.Kind.ATTACHMENT_DELETED,
            body=current.filename,
            data={
                "attachment_id": current.pk,
                "filename": current.filename,
                "size": current.size,
                "content_type": current.content_type,
            },
        )
        announce("attachment.deleted", lead=current.lead, actor=actor, attachment_id=current.pk)
    return current
