"""The database failing under a running server: a review whose connection is killed mid-way
answers 503 with nothing half-written and works on retry; a connection that died between
requests is replaced unseen; a PostgreSQL restart is survived without restarting the server."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import RefreshToken

from approvals.models import ApprovalRequest, Status
from audit.models import AuditEntry
from tests.servers import BASE_DIR, Server, database_url, free_ports

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRIVATE_PG_PORT = 5439


def direct_connection():
    """A psycopg connection of the test's own, beside Django's, to the same database."""
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or "127.0.0.1",
        port=params.get("PORT") or 5432,
        autocommit=False,
    )


@pytest.fixture
def server(transactional_db, tmp_path):
    (port,) = free_ports(1)
    running = Server(database_url(connection.settings_dict), port=port, log_path=tmp_path / "s.log")
    try:
        running.start().wait_healthy()
        yield running
    finally:
        running.stop()


def backend_blocked_by(watcher, holder, timeout=15) -> int:
    """The pid of the backend that waits for a lock the holder's connection holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = watcher.execute(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [holder.info.backend_pid],
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.05)
    raise AssertionError("the review never blocked on the approval's row lock")


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_review_whose_connection_is_killed_answers_503_writes_nothing_and_retry_applies(
    server, acme, developer, admin
):
    approval = ApprovalRequest.propose(
        flag=acme.flag, environment=acme.production, requestor=developer, change_type="enable"
    )
    token = str(RefreshToken.for_user(admin).access_token)
    path = f"/v1/approvals/{approval.pk}/review"
    entries_before = AuditEntry.objects.count()
    result = {}

    with direct_connection() as holder, direct_connection() as watcher:
        watcher.autocommit = True
        # Hold the row lock so the review blocks inside its transaction, lock requested.
        holder.execute(
            "SELECT id FROM approvals_approvalrequest WHERE id = %s FOR UPDATE", [approval.pk]
        )
        review = threading.Thread(
            target=lambda: result.update(
                response=server.request("POST", path, {"action": "approve"}, token)
            )
        )
        review.start()
        victim = backend_blocked_by(watcher, holder)
        watcher.execute("SELECT pg_terminate_backend(%s)", [victim])
        review.join(timeout=30)
        holder.rollback()

    status, body = result["response"]
    assert status == 503
    assert set(body) == {"error"}
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert approval.reviews.count() == 0
    assert AuditEntry.objects.count() == entries_before

    status, body = server.request("POST", path, {"action": "approve"}, token)
    assert status == 200, body
    assert body["status"] == Status.APPLIED
    assert (
        AuditEntry.objects.filter(
            action="flag.approved_change_applied", metadata__approval_id=str(approval.pk)
        ).count()
        == 1
    )


# ----- a private PostgreSQL cluster, restarted under a running server -------------------------


def as_postgres_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_api_request_on_a_connection_that_died_between_requests_succeeds(
    admin, api, monkeypatch
):
    """The request's first statement (authentication) is the reused connection's health check:
    a dead connection is replaced and the statement run again, and the client never sees it.
    Django's own check (a `SELECT 1` before the first statement) does not run."""
    separate_checks = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: separate_checks.append(1) or is_usable())
    client = api(admin)
    assert client.get("/v1/approvals").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (dead_pid,) = cursor.fetchone()
    with direct_connection() as killer:
        # Waits (up to 5 s) until the backend has exited, not only been signalled, so the next
        # request meets a connection that is certainly dead.
        (terminated,) = killer.execute(
            "SELECT pg_terminate_backend(%s, 5000)", [dead_pid]
        ).fetchone()
        killer.commit()
    assert terminated
    # What a server does as each request starts (Django's test client leaves it out): the
    # connection is kept for reuse, to be checked before its first statement.
    connection.close_if_unusable_or_obsolete()

    response = client.get("/v1/approvals")

    assert response.status_code == 200, response.json()
    assert separate_checks == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != dead_pid


@pytest.fixture
def private_postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser to start PostgreSQL as another user")
    base = Path(tempfile.mkdtemp(prefix="flagship-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60"]
    options = f"-p {PRIVATE_PG_PORT} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"

    def run(*args):
        subprocess.run(as_postgres_user([*pg_ctl, *args]), check=True, capture_output=True)

    try:
        subprocess.run(
            as_postgres_user(
                [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-N"]
            ),
            check=True,
            capture_output=True,
        )
        run("-o", options, "start")
    except subprocess.CalledProcessError as error:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a private PostgreSQL: {error.stderr.decode()[-500:]}")

    class Cluster:
        url = f"postgres://postgres@127.0.0.1:{PRIVATE_PG_PORT}/postgres"

        @staticmethod
        def stop():
            run("stop", "-m", "fast")

        @staticmethod
        def start():
            run("-o", options, "start")

        @staticmethod
        def restart():
            run("-o", options, "-m", "fast", "restart")

    try:
        yield Cluster
    finally:
        subprocess.run(as_postgres_user([*pg_ctl, "stop", "-m", "immediate"]), check=False)
        shutil.rmtree(base, ignore_errors=True)


def manage(database_url: str, *args) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.mark.postgres_only
def test_server_recovers_by_itself_when_postgresql_stops_and_restarts(private_postgres, tmp_path):
    url = private_postgres.url
    manage(url, "migrate", "--noinput", "-v", "0")
    manage(
        url,
        "create_org",
        *("--name", "Restart", "--owner-email", "o@restart.test"),
        *("--owner-password", "restart-password-1"),
    )
    (port,) = free_ports(1)
    server = Server(url, port=port, log_path=tmp_path / "server.log").start()
    try:
        server.wait_healthy()
        status, body = server.request(
            "POST", "/v1/auth/login", {"email": "o@restart.test", "password": "restart-password-1"}
        )
        assert status == 200, body
        token = body["tokens"]["access_token"]
        assert server.request("GET", "/v1/approvals", token=token)[0] == 200

        private_postgres.stop()
        assert server.request("GET", "/healthz") == (
            503,
            {"status": "unavailable", "database": "down"},
        )
        status, body = server.request("GET", "/v1/approvals", token=token)
        assert status == 503
        assert set(body) == {"error"}

        private_postgres.start()
        assert server.request("GET", "/healthz")[0] == 200
        assert server.request("GET", "/v1/approvals", token=token)[0] == 200

        private_postgres.restart()
        for _ in range(5):  # every thread's pooled connection died; each must reconnect
            assert server.request("GET", "/v1/approvals", token=token)[0] == 200
    finally:
        server.stop()
