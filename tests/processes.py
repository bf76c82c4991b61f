"""Real `manage.py run_worker` processes against the test database, and a local HTTP receiver
for webhooks, for the tests that need more than one process."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent


def worker_database_url(port: int | None = None) -> str:
    """The database the test run uses (pytest-django's `test_<name>`), as a DATABASE_URL;
    `port` sends it through a DatabaseProxy."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "worker processes need PostgreSQL"
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = "127.0.0.1" if port else db["HOST"] or "127.0.0.1"
    port = port or db["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def database_address() -> tuple[str, int]:
    db = connection.settings_dict
    return db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)


class WorkerProcess:
    def __init__(self, log_path: Path, *args: str, **env: str):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "run_worker", *args],
            cwd=PROJECT_DIR,
            env={
                **os.environ,
                "DATABASE_URL": worker_database_url(),
                "DJANGO_SETTINGS_MODULE": "flagship.settings",
                "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
                "WORKER_POLL_SECONDS": "1",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.send(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        self.process.kill()
        self.wait()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()


def wait_until(condition, timeout: float = 30, interval: float = 0.05, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message or condition}")


@dataclass
class ReceivedRequest:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with the next scripted
    status (200 once the script runs out). A script entry "hang" holds the request until
    `release` is set."""

    statuses: list = field(default_factory=list)
    requests: list[ReceivedRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    got_request: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    ReceivedRequest(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                receiver.got_request.set()
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == "hang":
                    receiver.release.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/flagship"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class DatabaseProxy:
    """A TCP proxy to PostgreSQL that the test can take down and bring back on the same port,
    which is what a database restart looks like to a worker connected through it."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self.connections: list[socket.socket] = []
        # stop() and the registration of a just-accepted connection exclude each other, so a
        # connection accepted while the proxy stops is cut too instead of outliving the stop.
        self.lock = threading.Lock()
        self.start()

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = self.listener.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuses new connections and cuts the open ones."""
        with self.lock:
            self.running = False
            # shutdown() wakes the thread blocked in accept(); close() alone would not on Linux.
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            for sock in self.connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self.connections.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if not self.running or listener is not self.listener:
                    client.close()
                    upstream.close()
                    return
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
