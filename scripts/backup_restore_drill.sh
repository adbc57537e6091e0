#!/usr/bin/env bash
# Backup and restore drill: seed a PostgreSQL database, back it up (pg_dump -Fc + a tar of MEDIA_ROOT),
# restore both into a fresh database and media folder, and prove the copy is whole. Exits non-zero on
# any failure. Usage: scripts/backup_restore_drill.sh  (env: PG_HOST, PG_PORT, PG_USER, DRILL_DB,
# RESTORE_DB, KEEP_DRILL=1 to keep the databases and files for a look afterwards).
set -euo pipefail

cd "$(dirname "$0")/.."

PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-postgres}"
DRILL_DB="${DRILL_DB:-leadboard_drill}"
RESTORE_DB="${RESTORE_DB:-${DRILL_DB}_restore}"
PYTHON="${PYTHON:-.venv/bin/python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/leadboard-drill.XXXXXX")"
PG=(-h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")

say() { echo "==== drill: $* ===="; }
fail() { echo "DRILL FAILED: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if [ "${KEEP_DRILL:-0}" = "1" ]; then
        echo "Kept ${WORK}, databases ${DRILL_DB} and ${RESTORE_DB}."
    else
        dropdb "${PG[@]}" --if-exists --force "$DRILL_DB" || true
        dropdb "${PG[@]}" --if-exists --force "$RESTORE_DB" || true
        rm -rf "$WORK"
    fi
    [ "$rc" -eq 0 ] && echo "==== drill passed ====" || echo "==== drill FAILED (exit ${rc}) ====" >&2
}
trap cleanup EXIT

# The app's environment for one database and one media folder.
app() {
    local db="$1" media="$2"
    shift 2
    env -u STORAGE_URL DATABASE_URL="postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${db}" MEDIA_ROOT="$media" \
        EMAIL_URL="dummymail://" TASKS_BACKEND="django_tasks.backends.immediate.ImmediateBackend" \
        REDIS_URL="" "$PYTHON" manage.py "$@"
}

# One line per table: "<table> <rows>", sorted, for every table in the public schema.
row_counts() {
    psql "${PG[@]}" -d "$1" -v ON_ERROR_STOP=1 -XAtF ' ' -c "
        SELECT table_name,
               (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM public.%I', table_name),
                                                     false, true, '')))[1]::text
        FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
        ORDER BY table_name"
}

# "<sha256>  <path>" for every file under a folder, sorted: the media folders must match byte for byte.
file_digests() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

say "fresh database ${DRILL_DB} and media folder"
dropdb "${PG[@]}" --if-exists --force "$DRILL_DB"
dropdb "${PG[@]}" --if-exists --force "$RESTORE_DB"
createdb "${PG[@]}" "$DRILL_DB"
MEDIA="${WORK}/media"
mkdir -p "$MEDIA" "${WORK}/backup"
app "$DRILL_DB" "$MEDIA" migrate --noinput -v 0

say "seed: seed_demo, a CSV import, a captured lead with a CV, an attachment"
app "$DRILL_DB" "$MEDIA" seed_demo --force >/dev/null
app "$DRILL_DB" "$MEDIA" shell -c '
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from accounts.models import User
from leads import imports, intake
from leads.attachments import add_attachment
from leads.models import ImportJob, Lead

manager = User.objects.get(email="manager@example.com")
csv = "Name,E-mail,Phone,Company,Stage\n" + "".join(
    f"Drill Person {n},drill{n}@import.example,,Drill Co,Reached Out\n" for n in range(25)
)
job = imports.start_upload(actor=manager, file=ContentFile(csv.encode(), name="drill.csv"))
imports.configure_import(job=job, actor=manager, mapping=job.mapping, defaults={}, duplicate_mode="skip")
ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
job = imports.run_import(job.pk)
assert job.created_count == 25, (job.status, job.created_count)
pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
lead = Lead.objects.get(email="drill0@import.example")
add_attachment(lead=lead, file=SimpleUploadedFile("contract.pdf", pdf, "application/pdf"), actor=manager)
intake.capture_lead(
    first_name="Drill", last_name="Prospect", email="prospect@drill.example", phone="", company="",
    message="Please call", consent=True, resume=SimpleUploadedFile("cv.pdf", pdf, "application/pdf"),
)
print("seeded", Lead.objects.count(), "leads")
'

say "check_integrity on ${DRILL_DB}"
app "$DRILL_DB" "$MEDIA" check_integrity || fail "the seeded database is not consistent"

say "backup: pg_dump -Fc and a tar of MEDIA_ROOT"
pg_dump "${PG[@]}" -Fc --no-owner -f "${WORK}/backup/${DRILL_DB}.dump" "$DRILL_DB"
tar -C "$MEDIA" -czf "${WORK}/backup/media.tar.gz" .
ls -l "${WORK}/backup"

say "restore into ${RESTORE_DB} and a fresh media folder"
createdb "${PG[@]}" "$RESTORE_DB"
pg_restore "${PG[@]}" --no-owner --exit-on-error -d "$RESTORE_DB" "${WORK}/backup/${DRILL_DB}.dump"
RESTORED_MEDIA="${WORK}/restored-media"
mkdir -p "$RESTORED_MEDIA"
tar -C "$RESTORED_MEDIA" -xzf "${WORK}/backup/media.tar.gz"

say "check_integrity on ${RESTORE_DB}"
app "$RESTORE_DB" "$RESTORED_MEDIA" check_integrity || fail "the restored copy is not consistent"
app "$RESTORE_DB" "$RESTORED_MEDIA" migrate --check -v 0 || fail "the restored copy has unapplied migrations"

say "row counts per table and media files"
row_counts "$DRILL_DB" >"${WORK}/source-counts.txt"
row_counts "$RESTORE_DB" >"${WORK}/restored-counts.txt"
[ -s "${WORK}/source-counts.txt" ] || fail "no tables counted in ${DRILL_DB}"
diff -u "${WORK}/source-counts.txt" "${WORK}/restored-counts.txt" || fail "row counts differ after restore"
echo "$(wc -l <"${WORK}/source-counts.txt") tables, same row counts:"
grep -E '^(leads_lead|leads_activity|leads_attachment|leads_importjob|accounts_user) ' "${WORK}/source-counts.txt"
file_digests "$MEDIA" >"${WORK}/source-files.txt"
file_digests "$RESTORED_MEDIA" >"${WORK}/restored-files.txt"
diff -u "${WORK}/source-files.txt" "${WORK}/restored-files.txt" || fail "media files differ after restore"
echo "$(wc -l <"${WORK}/source-files.txt") media files, identical."
