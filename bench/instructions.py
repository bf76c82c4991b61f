"""Counts the CPU instructions the app spends on one review + apply, with valgrind's callgrind.

    .venv/bin/python bench/instructions.py                    # this checkout
    .venv/bin/python bench/instructions.py --source ../other  # another checkout, same database

Requests per second on this machine move by a fifth from one run to the next with the same
code (bench/README.md); an instruction count moves by about one percent, so it shows a
change of a few percent in what the app does for a request. It counts the application's own
process only: not PostgreSQL, not the kernel's work for its system calls, not gunicorn.

Each count runs review + apply in one process, through the WSGI application with the
production middleware and settings of bench/run.py, on pending requests of organization
bench-1 of the loaded benchmark database (`make bench` loads it; each count uses about 120
of its 30,000 pending requests). Two runs, of SHORT and LONG requests after the same warm-up,
are counted, and their difference divided by LONG - SHORT: what starting Python and Django
costs cancels out.
"""

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 20
SHORT, LONG = 10, 70


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose code to count")
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)  # one counted run
    return parser.parse_args()


def review_requests(count: int) -> None:
    """Runs WARM_UP, then `count`, reviews that approve and apply, in this process."""
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from rest_framework_simplejwt.tokens import RefreshToken

    from approvals.models import ApprovalRequest, Status
    from flagship.models import User

    application = get_wsgi_application()
    reviewer = User.objects.get(email="admin1@bench.test")
    token = str(RefreshToken.for_user(reviewer).access_token)
    pending = ApprovalRequest.objects.filter(org_id=reviewer.org_id, status=Status.PENDING)
    ids = list(pending.order_by("-created_at").values_list("pk", flat=True)[: WARM_UP + count])
    if len(ids) < WARM_UP + count:
        sys.exit("too few pending requests left in bench-1: run `make bench` to load them again")
    body = json.dumps({"action": "approve", "ignore_conflicts": True}).encode()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for approval_id in ids:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": f"/v1/approvals/{approval_id}/review",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8400",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8400",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        b"".join(application(environ, start_response))
        if not statuses[-1].startswith("200"):
            sys.exit(f"review of {approval_id} answered {statuses[-1]}")


def counted_instructions(source: Path, requests: int) -> int:
    from run import server_environment  # bench/run.py, beside this script

    environment = {**server_environment(port=8400), "PYTHONPATH": str(source)}
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={directory}/callgrind.out",
                sys.executable,
                str(Path(__file__).resolve()),
                "--source",
                str(source),
                "--requests",
                str(requests),
            ],
            # The system allocator, so that valgrind sees every allocation the same way.
            env={**environment, "PYTHONMALLOC": "malloc"},
            cwd=source,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        sys.exit(f"the counted run failed:\n{result.stdout}\n{result.stderr}")
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def main() -> None:
    args = parse_args()
    if args.requests is not None:
        sys.path.insert(0, str(args.source))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagship.settings")
        review_requests(args.requests)
        return
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind: apt-get install -y valgrind")
    source = args.source.resolve()
    short = counted_instructions(source, SHORT)
    long = counted_instructions(source, LONG)
    per_request = (long - short) / (LONG - SHORT)
    print(f"review + apply: {per_request / 1e6:.2f} million instructions per request ({source})")


if __name__ == "__main__":
    main()
