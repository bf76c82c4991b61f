"""Real gunicorn servers for tests that need separate processes (races across app servers,
database faults). They bind 127.0.0.1 on ports 8300-8319 and are stopped by the test."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
PORTS = range(8300, 8320)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database Django is connected to (pytest-django's test_<name>)."""
    credentials = quote(settings_dict["USER"] or "postgres")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"])
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings_dict['NAME']}"


def free_ports(count: int) -> list[int]:
    found = []
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"fewer than {count} free ports in 8300-8319")


class Server:
    def __init__(self, database_url: str, *, port: int, log_path: Path, threads: int = 8):
        self.port = port
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": settings.SECRET_KEY,
            # The tests send many writes as one user; they are about races, not throttling.
            "WRITE_THROTTLE_RATE": "100000/min",
        }
        self.command = [
            str(GUNICORN),
            "flagship.wsgi",
            f"--bind=127.0.0.1:{self.port}",
            "--workers=1",
            "--worker-class=gthread",
            f"--threads={threads}",
            "--timeout=60",
        ]
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_path.read_text()[-3000:]}")
            status, _ = self.request("GET", "/healthz", timeout=2)
            if status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn never became healthy:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # INT is gunicorn's quick shutdown; the tests have no requests left in flight.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(self, method: str, path: str, body=None, token: str | None = None, timeout=30):
        """(status, parsed JSON or None); status 0 when the server cannot be reached."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None


def _json(raw: bytes):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
