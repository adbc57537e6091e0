"""Tiny valid (and deliberately invalid) files of each accepted type, built in memory for attachment tests."""

import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n"
    + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    + b"\x00\x00\x00\x00IEND\xaeB`\x82"
)
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
DOC_BYTES = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
TEXT_BYTES = "Résumé of Ada Lovelace\nAnalytical engines, 1843.\n".encode()


def _zip(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


DOCX_BYTES = _zip(
    {
        "[Content_Types].xml": '<?xml version="1.0"?><Types/>',
        "word/document.xml": '<?xml version="1.0"?><w:document/>',
    }
)
ODT_BYTES = _zip({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": "<office/>"})
PLAIN_ZIP_BYTES = _zip({"notes.txt": "just a zip"})

# (file name, bytes, the content type the upload must be stored with)
ACCEPTED_SAMPLES = [
    ("cv.pdf", PDF_BYTES, "application/pdf"),
    ("cv.doc", DOC_BYTES, "application/msword"),
    ("cv.docx", DOCX_BYTES, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("cv.odt", ODT_BYTES, "application/vnd.oasis.opendocument.text"),
    ("notes.txt", TEXT_BYTES, "text/plain"),
    ("photo.png", PNG_BYTES, "image/png"),
    ("photo.jpg", JPEG_BYTES, "image/jpeg"),
    ("photo.jpeg", JPEG_BYTES, "image/jpeg"),
]
SAMPLE_IDS = [name for name, _, _ in ACCEPTED_SAMPLES]


def upload(name="cv.pdf", content=PDF_BYTES, content_type="application/octet-stream"):
    """A file as a browser would post it; the claimed content type is deliberately unhelpful."""
    return SimpleUploadedFile(name, content, content_type=content_type)
