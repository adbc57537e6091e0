"""make loadtest: gunicorn (uvicorn workers, production settings) against seeded PostgreSQL, driven by wrk.

Seeds a scratch database with `manage.py bench_dashboard` (100,000 leads by default), starts the
Procfile's web command with DEBUG off, then drives the filtered API list and the board page with
wrk at each concurrency and prints requests/s, p50/p99 latency, errors and CPU use as a table.
Run from the checkout with the venv's interpreter: `.venv/bin/python scripts/loadtest.py --help`.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadboard_load_bench"

# The throttle would turn a load test into a rate-limit test: 1200/min for one user is 20
# requests/s, answered 429 beyond that. The load test raises it (and says so in its output);
# what it measures is the server, not the limiter. Counting still happens on every request.
LOAD_TEST_USER_RATE = "100000000/min"

# wrk's Lua: the bearer token or session cookie on every request, and a strict count of
# responses that are not 2xx (wrk's own "Non-2xx or 3xx" lets a 302 to the login page pass).
WRK_LUA = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  non2xx = 0
  statuses = {}
end
wrk.headers["Accept"] = "%(accept)s"
%(auth)s
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  local seen = {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("non2xx")
    for status, n in pairs(thread:get("statuses")) do
      seen[status] = (seen[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(seen) do
    table.insert(parts, status .. "=" .. n)
  end
  io.write("LOADTEST_NON2XX " .. total .. " " .. table.concat(parts, ",") .. "\n")
end
"""

# Runs inside `manage.py shell`: the bench manager's JWT and session, and the busiest
# source and owner of the bench leads (the API filter the test uses).
CREDENTIALS_CODE = """
import json
from importlib import import_module
from django.conf import settings
from django.contrib import auth
from django.db.models import Count
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import User
from leads.models import Lead
manager = User.objects.get(email="manager@bench.example")
# bench_dashboard inserts with triggers off (session_replication_role = replica), so the lead
# counters (leads/counts.py, kept by triggers) miss the bench rows: rebuild them, or the board
# and the API would read zero totals cheaply.
try:
    from leads import counts
except ImportError:
    counts = None
if counts is not None and counts.uses_counters():
    counts.rebuild_lead_counts()
# A session as login() writes it, without a login request (the bench manager has no password).
backend = next(b for b in auth.get_backends() if getattr(b, "get_user", None) and b.get_user(manager.pk))
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[auth.SESSION_KEY] = str(manager.pk)
session[auth.BACKEND_SESSION_KEY] = f"{type(backend).__module__}.{type(backend).__qualname__}"
session[auth.HASH_SESSION_KEY] = manager.get_session_auth_hash()
session.create()
leads = Lead.objects.filter(email__endswith="@bench.example")
source = leads.values("source_id").annotate(n=Count("id")).order_by("-n")[0]["source_id"]
owner = leads.filter(source_id=source, owner__isnull=False).values("owner_id").annotate(
    n=Count("id")).order_by("-n")[0]["owner_id"]
print("LOADTEST_CREDENTIALS " + json.dumps({
    "token": str(AccessToken.for_user(manager)),
    "session": session.session_key,
    "source": source,
    "owner": owner,
    "bench_leads": leads.count(),
}))
"""


class LoadTestError(Exception):
    """A precondition failed: the message says what to do."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOADTEST_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL scratch database, created if missing; its name must end in _bench unless --yes "
        f"(default $LOADTEST_DATABASE_URL or {DEFAULT_DATABASE_URL}).",
    )
    parser.add_argument("--leads", type=int, default=100_000, help="Bench leads to seed (default 100,000).")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep bench leads already there (e.g. the 1,000,000-lead database).",
    )
    parser.add_argument(
        "--yes", action="store_true", help="Allow a database whose name does not end in _bench."
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="gunicorn workers (default 2: one per core on a 2-core machine).",
    )
    parser.add_argument(
        "--concurrency", default="8,32,64", help="Comma-separated open connections per run (default 8,32,64)."
    )
    parser.add_argument("--duration", type=int, default=20, help="Seconds per wrk run (default 20).")
    parser.add_argument(
        "--warmup", type=int, default=5, help="Untimed seconds per endpoint first (default 5)."
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2).")
    parser.add_argument(
        "--timeout",
        default="10s",
        help="wrk's per-request timeout: slower answers count as errors (default 10s).",
    )
    parser.add_argument(
        "--endpoints", default="api,board", help="Comma-separated: api, board (default both)."
    )
    parser.add_argument(
        "--conn-max-age",
        default="0",
        help="CONN_MAX_AGE for the server (default 0: under ASGI each request runs in its own thread, "
        "so persistent connections are never reused and pile up until garbage-collected; see README).",
    )
    parser.add_argument("--json", type=Path, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)
    try:
        args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--concurrency must be numbers separated by commas, not {args.concurrency!r}")
    if not args.levels or min(args.levels) < 1 or args.duration < 1 or args.workers < 1 or args.leads < 1:
        parser.error("--concurrency, --duration, --workers and --leads must be positive")
    args.endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    if not args.endpoints or set(args.endpoints) - {"api", "board"}:
        parser.error(f"--endpoints takes api and/or board, not {','.join(args.endpoints)!r}")
    for level in args.levels:
        if level < args.threads:
            parser.error(
                f"concurrency {level} is below --threads {args.threads}: wrk needs one connection a thread"
            )
    return args


def ensure_wrk():
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing the Debian package (apt-get install -y wrk)…", flush=True)
        result = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True)
        if result.returncode == 0 and shutil.which("wrk"):
            return shutil.which("wrk")
        raise LoadTestError(f"apt-get install -y wrk failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    raise LoadTestError(
        "wrk is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y wrk; "
        "macOS: brew install wrk) and run make loadtest again."
    )


def ensure_database(url, allow_any_name):
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise LoadTestError(f"The load test needs PostgreSQL; --database-url is {parts.scheme}://…")
    name = parts.path.lstrip("/")
    if not name:
        raise LoadTestError("--database-url names no database.")
    if not name.endswith("_bench") and not allow_any_name:
        raise LoadTestError(
            f"Refusing to seed bench leads into “{name}”: use a database whose name ends in _bench, "
            "or pass --yes."
        )
    import psycopg  # the venv's driver; imported here so --help works without it

    admin_url = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                print(f"Creating database {name}…", flush=True)
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise LoadTestError(
            f"Cannot reach PostgreSQL at {parts.hostname}:{parts.port or 5432}: {exc}"
        ) from exc
    return name


def manage(env, *args, capture=False):
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise LoadTestError(
            f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout if capture else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url, process, deadline=60):
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if process.poll() is not None:
            raise LoadTestError(f"gunicorn exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise LoadTestError(f"gunicorn did not answer {url} within {deadline} s")


def check_answer(url, headers, expect_type):
    """One request before the load: a misconfigured run (redirect, 401, 500) fails here, loudly."""
    request = urllib.request.Request(url, headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            body = response.read()
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise LoadTestError(f"GET {url} answered {exc.code}, not 200: {exc.read()[:500]!r}") from exc
    if expect_type not in kind:
        raise LoadTestError(f"GET {url} answered {kind}, expected {expect_type}")
    return body


# --- CPU sampling: /proc/stat for the machine, /proc/<pid>/stat for gunicorn and PostgreSQL ---

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]), idle


def process_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def descendants(pid):
    """pid and every process below it (gunicorn's master and its workers), from /proc's parent ids."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


class PostgresSampler(threading.Thread):
    """Polls the bench database every 0.2 s during a run: the most backends open at once.

    (Their CPU is not reported: with CONN_MAX_AGE=0 most backends live for one request, too
    short to sample, so any figure would be an undercount.)
    """

    def __init__(self, database_url, database):
        super().__init__(daemon=True)
        self.database_url, self.database = database_url, database
        self.stopping = threading.Event()
        self.most = 0

    def sample(self, conn):
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.database],
        ).fetchone()
        self.most = max(self.most, count)

    def run(self):
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            self.sample(conn)
            self.started.set()
            while not self.stopping.wait(0.2):
                self.sample(conn)

    def start(self):
        self.started = threading.Event()
        super().start()
        self.started.wait(10)

    def stop(self):
        self.stopping.set()
        self.join(10)
        return self.most


# --- wrk -----------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output):
    """requests/s, p50/p99 (ms), requests, socket errors and non-2xx from `wrk --latency` + our Lua."""

    def find(pattern, default=None):
        match = re.search(pattern, output)
        if match is None and default is None:
            raise ValueError(f"wrk output has no {pattern!r}:\n{output}")
        return match if match is not None else default

    result = {
        "rps": float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": to_ms(find(r"\n\s+50%\s+(\S+)").group(1)),
        "p99_ms": to_ms(find(r"\n\s+99%\s+(\S+)").group(1)),
        "requests": int(find(r"(\d+) requests in").group(1)),
        "connect": 0,
        "read": 0,
        "write": 0,
        "timeout": 0,
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:  # wrk prints the line only when there was one
        result.update(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
    non2xx = find(r"LOADTEST_NON2XX (\d+) ?(\S*)")
    result["non2xx"] = int(non2xx.group(1))
    result["statuses"] = non2xx.group(2)
    return result


def run_wrk(wrk, url, lua_path, connections, seconds, threads, timeout):
    command = [
        wrk, "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", timeout, "-s", str(lua_path), url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise LoadTestError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    return result.stdout


def measure(wrk, url, lua_path, connections, args, server_pid, database_url, database):
    server = descendants(server_pid)
    sampler = PostgresSampler(database_url, database)
    sampler.start()
    before_machine, before_server = machine_ticks(), process_ticks(server)
    output = run_wrk(wrk, url, lua_path, connections, args.duration, args.threads, args.timeout)
    after_machine, after_server = machine_ticks(), process_ticks(server)
    db_connections = sampler.stop()
    busy = (after_machine[0] - after_machine[1]) - (before_machine[0] - before_machine[1])
    elapsed = after_machine[0] - before_machine[0]  # ticks of every core together
    cores = os.cpu_count() or 1
    result = parse_wrk(output)
    result.update(
        connections=connections,
        machine_cpu=100.0 * busy / elapsed if elapsed else 0.0,
        # In cores (1.0 = one core fully busy) over the wall time of the run.
        server_cores=(after_server - before_server) * cores / elapsed if elapsed else 0.0,
        db_connections=db_connections,
    )
    return result


def latency(row, key):
    # wrk leaves timed-out requests out of its percentiles: with none answered in time, none.
    return "—" if row["requests"] <= row["timeout"] else f"{row[key]:.1f}"


def table(rows):
    header = (
        "| endpoint | connections | requests/s | p50 ms | p99 ms | gunicorn CPU ms a request | requests | "
        "non-2xx | "
        "socket errors (connect/read/write/timeout) | machine CPU | gunicorn cores | "
        "PostgreSQL connections (most) |"
    )
    lines = [header, "| " + " | ".join(["---"] * 12) + " |"]
    for r in rows:
        non2xx = f"{r['non2xx']}" + (f" ({r['statuses']})" if r["statuses"] else "")
        # The server's CPU over the run divided by the answers: what one request costs, whatever
        # else the machine is doing (the throughput alone depends on how busy the machine is).
        cpu_per_request = f"{r['server_cores'] * 1000 / r['rps']:.0f}" if r["rps"] else "—"
        lines.append(
            f"| {r['endpoint']} | {r['connections']} | {r['rps']:,.0f} | "
            f"{latency(r, 'p50_ms')} | {latency(r, 'p99_ms')} | {cpu_per_request} | "
            f"{r['requests']:,} | {non2xx} | {r['connect']}/{r['read']}/{r['write']}/{r['timeout']} | "
            f"{r['machine_cpu']:.0f}% | {r['server_cores']:.2f} | {r['db_connections']} |"
        )
    return "\n".join(lines)


def stop(process):
    """SIGTERM the whole process group (gunicorn and its workers), SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


def main(argv=None):
    args = parse_args(argv)
    wrk = ensure_wrk()
    database = ensure_database(args.database_url, args.yes)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        # Production settings: DEBUG off, a real key (fresh per run), only the address we serve.
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        # Plain http on the loopback: no redirect to https (the flag's name in config/settings.py).
        "SECURE_SSL_REDIRECT": "0",
        "API_THROTTLE_USER": LOAD_TEST_USER_RATE,
        "JWT_ACCESS_MINUTES": "240",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": args.conn_max_age,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("TASKS_BACKEND", None)
    print(f"Database {database}: migrate…", flush=True)
    manage(env, "migrate", "--noinput")
    seed = ["bench_dashboard", "--leads", str(args.leads), "--runs", "1", "--warmup", "0"]
    if args.reuse:
        seed.append("--reuse")
    if args.yes:
        seed.append("--yes")
    print(f"Seeding with manage.py {' '.join(seed)} (generation and one dashboard measurement)…", flush=True)
    started = time.monotonic()
    seeded = manage(env, *seed, capture=True)
    generated = [line for line in seeded.splitlines() if line.startswith(("Generated", "Reusing"))]
    print(f"  {generated[0] if generated else 'done'} ({time.monotonic() - started:.0f} s)", flush=True)
    manage(env, "collectstatic", "--noinput")
    credentials_out = manage(env, "shell", "-c", CREDENTIALS_CODE, capture=True)
    credentials = json.loads(credentials_out.split("LOADTEST_CREDENTIALS ", 1)[1].splitlines()[0])

    endpoints = [
        (
            "api",
            "API list ?source&owner (JWT)",
            f"{base}/api/leads/?source={credentials['source']}&owner={credentials['owner']}",
            "application/json",
            ("Authorization", f"Bearer {credentials['token']}"),
        ),
        (
            "board",
            "board page (session)",
            f"{base}/board/",
            "text/html",
            ("Cookie", f"sessionid={credentials['session']}"),
        ),
    ]
    # The Procfile's web line, on the loopback, access log included (it is part of production).
    workdir = Path(tempfile.mkdtemp(prefix="leadboard-loadtest-"))
    access_log = workdir / "access.log"
    command = [
        PYTHON, "-m", "gunicorn", "config.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--access-logfile", str(access_log),
    ]  # fmt: skip
    print(f"Starting: {' '.join(command[1:])}", flush=True)
    server_log = open(workdir / "gunicorn.log", "w")
    server = None
    rows = []
    try:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until_up(f"{base}/accounts/login/", server)
        for key, name, url, kind, (header, value) in endpoints:
            if key not in args.endpoints:
                continue
            check_answer(url, {header: value, "Accept": kind}, kind)
            lua_path = workdir / f"{len(rows)}.lua"
            auth = f"wrk.headers[{json.dumps(header)}] = {json.dumps(value)}"
            lua_path.write_text(WRK_LUA % {"accept": kind, "auth": auth})
            if args.warmup:
                run_wrk(wrk, url, lua_path, args.levels[0], args.warmup, args.threads, args.timeout)
            for connections in args.levels:
                print(f"  {name}: {connections} connections for {args.duration} s…", flush=True)
                result = measure(
                    wrk, url, lua_path, connections, args, server.pid, args.database_url, database
                )
                result["endpoint"] = name
                rows.append(result)
        if server.poll() is not None:
            raise LoadTestError(f"gunicorn exited with {server.returncode} during the run")
    finally:
        stop(server)
        server_log.close()
    errors = sum(r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"] for r in rows)
    # A run in which no request finished measured nothing: that is a failure too.
    errors += sum(1 for r in rows if r["requests"] == 0)
    print()
    print(
        f"{credentials['bench_leads']:,} bench leads; gunicorn -k uvicorn_worker.UvicornWorker --workers "
        f"{args.workers}, DEBUG=0; wrk -t{args.threads} --timeout {args.timeout}, {args.duration} s per row; "
        f"CONN_MAX_AGE={args.conn_max_age}; API_THROTTLE_USER raised to {LOAD_TEST_USER_RATE} for the run; "
        f"{os.cpu_count()} CPUs."
    )
    print(table(rows))
    print(
        "machine CPU: every process on the machine (busy share of all cores, /proc/stat); gunicorn cores: "
        "CPU of gunicorn's processes (1.00 = one core busy); CPU ms a request = gunicorn cores / "
        "requests/s; PostgreSQL connections: most backends open on the bench database at once."
    )
    print(f"Logs: {workdir}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if errors:
        print(f"FAILED: {errors} errors (non-2xx responses or socket errors); see the table and {workdir}")
        return 1
    print("No errors at any level.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LoadTestError as exc:
        print(f"make loadtest: {exc}", file=sys.stderr)
        sys.exit(2)
