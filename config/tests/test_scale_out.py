"""Beyond one machine, for real: two gunicorns share a Redis channel layer, two db_workers one queue.

And CSV exports work through PgBouncer in transaction mode. The tests start real processes
(gunicorn with uvicorn workers, manage.py db_worker, pgbouncer) against the test database, so
they run on PostgreSQL only and need `transaction=True`: the subprocesses only see committed
rows. Every process is started in its own process group and killed in `finally`.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.roles import Role
from leads import imports
from leads.models import Activity, ImportJob, Lead, Stage
from leads.tests.factories import LeadFactory, UserFactory

ROOT = Path(settings.BASE_DIR)
REDIS_URL = os.environ.get("SCALE_OUT_REDIS_URL", "redis://127.0.0.1:6379/14")
START_TIMEOUT = 60  # seconds for a gunicorn to answer on a loaded 2-core machine
DRAIN_TIMEOUT = 120  # seconds for two workers to drain the queue
IDLE_SECONDS = 4

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="scale-out needs PostgreSQL: several processes share one database (SQLite's is in memory)",
    ),
]


def _database_url():
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _env(**extra):
    """The subprocesses' environment: the test database, the test process's key, production-like."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "TASKS_BACKEND", "REDIS_URL", "CACHE_URL"}
    }
    env.update(
        {"DATABASE_URL": _database_url()},
        # The same key as this process, so the sessions and JWTs the test makes are valid there.
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        CONN_MAX_AGE="0",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="config.tests.scale_out_settings",
        **extra,
    )
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(command, env, log_path):
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process in _stop
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process.log = log
    process.log_path = log_path
    return process


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        process.log.close()


def _log(process):
    return Path(process.log_path).read_text()[-4000:]


def _wait_for_port(process, port):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the process on port {port} exited with {process.returncode}:\n{_log(process)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the process on port {port} did not listen within {START_TIMEOUT} s:\n{_log(process)}")


@pytest.fixture
def redis_db():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs a Redis server at {REDIS_URL} (set SCALE_OUT_REDIS_URL): {exc}")
    return REDIS_URL


def test_a_move_through_one_instance_reaches_a_socket_on_another(redis_db, tmp_path, client):
    pytest.importorskip("uvicorn_worker", reason="needs uvicorn-worker (requirements.txt)")
    websockets_client = pytest.importorskip("websockets.sync.client", reason="needs the websockets package")
    websockets_exceptions = pytest.importorskip("websockets.exceptions")
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("needs gunicorn in the virtualenv (requirements.txt)")
    import requests
    from rest_framework_simplejwt.tokens import AccessToken

    mover = UserFactory(role=Role.MANAGER, email="mover@scale.example")
    watcher = UserFactory(role=Role.MANAGER, email="watcher@scale.example")
    lead = LeadFactory()
    target = Stage.objects.get(name="In Progress")
    client.force_login(watcher)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    env = _env(REDIS_URL=redis_db, SCALE_OUT_CHANNEL_PREFIX=f"scale-out-{uuid.uuid4().hex[:12]}")
    ports = [_free_port(), _free_port()]
    processes = []
    try:
        for name, port in zip("AB", ports, strict=True):
            command = [
                sys.executable, "-m", "gunicorn", "config.asgi:application",
                "-k", "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            ]  # fmt: skip
            processes.append(_start(command, env, tmp_path / f"gunicorn-{name}.log"))
        for process, port in zip(processes, ports, strict=True):
            _wait_for_port(process, port)
        a, b = (f"127.0.0.1:{port}" for port in ports)

        with websockets_client.connect(
            f"ws://{b}/ws/board/",
            origin=f"http://{b}",
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
            open_timeout=20,
        ) as socket_on_b:
            # Quiet first, longer than the layer's 2 s socket timeout: an open board is idle most of
            # the time, and channels_redis's own 5 s blocking read used to drop the socket here.
            time.sleep(IDLE_SECONDS)
            response = requests.patch(
                f"http://{a}/api/leads/{lead.pk}/stage",
                json={"stage": target.pk, "version": lead.version},
                headers={"Authorization": f"Bearer {AccessToken.for_user(mover)}"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            assert response.json()["stage"]["id"] == target.pk
            # B never saw the request: the note can only have come through the shared Redis.
            deadline = time.monotonic() + 20
            while True:
                remaining = deadline - time.monotonic()
                assert remaining > 0, "the move made on instance A never reached the socket on instance B"
                try:
                    note = json.loads(socket_on_b.recv(timeout=remaining))
                except websockets_exceptions.ConnectionClosed as exc:
                    pytest.fail(f"instance B closed the board's socket ({exc}):\n{_log(processes[1])}")
                if note.get("lead_id") == lead.pk:
                    break
        assert note["stage_id"] == target.pk
        assert note["actor_id"] == mover.pk
        assert note["version"] == lead.version + 1
        assert all(p.poll() is None for p in processes), "a gunicorn died during the test"
    finally:
        _stop(processes)
    lead.refresh_from_db()
    assert lead.stage_id == target.pk


# --- two workers, one queue --------------------------------------------------------------------

JOBS = 6
ROWS_PER_JOB = 240
INVALID_EVERY = 12  # every twelfth row has neither e-mail nor phone: rejected, never a lead


def _csv(job_number):
    lines = ["Name,E-mail,Company"]
    for i in range(ROWS_PER_JOB):
        email = "" if i % INVALID_EVERY == 0 else f"job{job_number}-row{i}@scale.example"
        lines.append(f"Person {job_number}-{i},{email},Scale Co")
    return ("\n".join(lines) + "\n").encode()


def test_two_db_workers_drain_one_queue_and_import_every_row_once(settings, tmp_path):
    from django.core.files.base import ContentFile
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    manager = UserFactory(role=Role.MANAGER, email="importer@scale.example")
    # Small batches: each job is many transactions, so the two workers' writes interleave.
    env = _env(TASKS_BACKEND="django_tasks_db.DatabaseBackend", IMPORT_BATCH_SIZE="40")
    workers = []
    try:
        for worker_id in ("worker-a", "worker-b"):
            command = [
                sys.executable, "manage.py", "db_worker", "--worker-id", worker_id,
                "--interval", "0.2", "--no-startup-delay", "--no-reload",
            ]  # fmt: skip
            workers.append(_start(command, env, tmp_path / f"{worker_id}.log"))
        # Queue everything at once, after both workers are polling.
        deadline = time.monotonic() + START_TIMEOUT
        while not all("Starting worker" in Path(w.log_path).read_text() for w in workers):
            assert all(w.poll() is None for w in workers), "\n".join(_log(w) for w in workers)
            assert time.monotonic() < deadline, "the workers did not start:\n" + "\n".join(
                _log(w) for w in workers
            )
            time.sleep(0.2)
        jobs = []
        for n in range(JOBS):
            job = imports.start_upload(actor=manager, file=ContentFile(_csv(n), name=f"scale-{n}.csv"))
            imports.configure_import(
                job=job, actor=manager, mapping=job.mapping, defaults={}, duplicate_mode="skip"
            )
            jobs.append(imports.queue_import(job=job, actor=manager))

        deadline = time.monotonic() + DRAIN_TIMEOUT
        while DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).exists():
            assert all(w.poll() is None for w in workers), "a worker died:\n" + "\n".join(
                _log(w) for w in workers
            )
            assert time.monotonic() < deadline, "the queue was not drained:\n" + "\n".join(
                _log(w) for w in workers
            )
            time.sleep(0.3)
    finally:
        _stop(workers)

    results = list(DBTaskResult.objects.all())
    assert len(results) == JOBS
    # Every queued job ran exactly once, to success, claimed by one worker only.
    assert {r.status for r in results} == {"SUCCESSFUL"}, [(r.id, r.status, r.traceback) for r in results]
    assert all(len(r.worker_ids) == 1 for r in results), [r.worker_ids for r in results]
    # Both workers took jobs from the one queue (the point of running two).
    assert {r.worker_ids[0] for r in results} == {"worker-a", "worker-b"}

    valid_per_job = ROWS_PER_JOB - len(range(0, ROWS_PER_JOB, INVALID_EVERY))
    for job in ImportJob.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.status == ImportJob.Status.DONE, job.error
        assert (job.created_count, job.failed_count) == (valid_per_job, ROWS_PER_JOB - valid_per_job)
    imported = Lead.objects.filter(email__endswith="@scale.example")
    assert imported.count() == JOBS * valid_per_job
    assert imported.values("email").distinct().count() == JOBS * valid_per_job
    # One "imported" entry per lead on the timeline: no row was written twice.
    entries = Activity.objects.filter(lead__in=imported, kind=Activity.Kind.IMPORTED)
    assert entries.count() == JOBS * valid_per_job
    assert entries.values("lead_id").distinct().count() == JOBS * valid_per_job


# --- PgBouncer in transaction mode ---------------------------------------------------------------

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
EXPORTS = 6
EXPORT_LEADS = 60
# Runs in a subprocess whose DATABASE_URL is PgBouncer: concurrent CSV exports, as the board's
# export streams them (a database iterator), each counted; prints how many succeeded.
EXPORT_CODE = """
import threading
from django.db import connection
from leads.exports import stream_leads_csv
from leads.models import Lead
results = []
def export():
    try:
        body = b"".join(chunk.encode() if isinstance(chunk, str) else chunk for chunk in stream_leads_csv(
            Lead.objects.filter(email__endswith="@pool.example")))
        results.append(body.count(b"\\n") - 1)
    except Exception as exc:
        results.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        connection.close()
threads = [threading.Thread(target=export) for _ in range(%d)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("EXPORTS", results)
"""


def test_csv_exports_work_through_pgbouncer_in_transaction_mode(tmp_path):
    if PGBOUNCER is None:
        pytest.skip("needs pgbouncer (Debian: apt-get install -y pgbouncer)")
    import tempfile

    for n in range(EXPORT_LEADS):
        LeadFactory(email=f"lead{n}@pool.example")
    s = connection.settings_dict
    port = _free_port()
    # pgbouncer refuses to run as root: as root it drops to the postgres user, who must read this.
    folder = Path(tempfile.mkdtemp(prefix="leadboard-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{s["USER"]}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{s['NAME']} = host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} "
        f"dbname={s['NAME']}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 2\nignore_startup_parameters = extra_float_digits,options\nunix_socket_dir =\n"
    )
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    processes = [_start(command, os.environ.copy(), tmp_path / "pgbouncer.log")]
    try:
        _wait_for_port(processes[0], port)
        url = _database_url().replace(f":{s['PORT'] or 5432}/", f":{port}/")
        env = _env(DATABASE_URL=url, DISABLE_SERVER_SIDE_CURSORS="1")
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", EXPORT_CODE % EXPORTS],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        _stop(processes)
        shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("EXPORTS "))
    # Without DISABLE_SERVER_SIDE_CURSORS most of these fail: 'cursor "_django_curs_…" does not exist'.
    assert line == f"EXPORTS {[EXPORT_LEADS] * EXPORTS}"
