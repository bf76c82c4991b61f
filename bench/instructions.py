"""Counts the CPU instructions the app spends on one request, with valgrind's callgrind.

    .venv/bin/python bench/instructions.py                    # this checkout, every scenario
    .venv/bin/python bench/instructions.py review             # one scenario
    .venv/bin/python bench/instructions.py --source ../other  # another checkout, same database

Requests per second on this machine move by a fifth from one run to the next with the same
code (bench/README.md); an instruction count moves by about one percent, so it shows a
change of a few percent in what the app does for a request. It counts the application's own
process only: not PostgreSQL, not the kernel's work for its system calls, not gunicorn.

Each count runs one scenario in one process, through the WSGI application with the
production middleware and settings of bench/run.py, on the loaded benchmark database
(`make bench` loads it): review + apply on pending requests of organization bench-1 (each
count uses about 120 of its 30,000), and pages 1 and 2,000 of bench-0's newest-first list.
Two runs, of SHORT and LONG requests after the same warm-up, are counted, and their
difference divided by LONG - SHORT: what starting Python and Django costs cancels out.
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


SCENARIOS = {
    "review": "review + apply",
    "list_first": "list, all statuses, 50/page, page 1",
    "list_deep": "list, all statuses, 50/page, page 2,000 (cursor)",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose code to count")
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)  # one counted run
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown scenario {', '.join(sorted(unknown))}; choose of {', '.join(SCENARIOS)}"
        )
    return args


def scenario_requests(scenario: str, count: int) -> list[tuple[str, str, str, bytes]]:
    """WARM_UP + `count` requests of the scenario: (user's email, method, path, body)."""
    from prepare import PAGE, list_page_path  # bench/prepare.py, beside this script

    from approvals.models import ApprovalRequest, Status
    from flagship.models import User

    if scenario == "review":
        reviewer = User.objects.get(email="admin1@bench.test")
        pending = ApprovalRequest.objects.filter(org_id=reviewer.org_id, status=Status.PENDING)
        ids = list(pending.order_by("-created_at").values_list("pk", flat=True)[: WARM_UP + count])
        if len(ids) < WARM_UP + count:
            sys.exit("too few pending requests left in bench-1: run `make bench` to load again")
        body = json.dumps({"action": "approve", "ignore_conflicts": True}).encode()
        return [(reviewer.email, "POST", f"/v1/approvals/{pk}/review", body) for pk in ids]
    reader = User.objects.get(email="admin0@bench.test")
    path = list_page_path(reader.org_id, 1 if scenario == "list_first" else PAGE)
    return [(reader.email, "GET", path, b"")] * (WARM_UP + count)


def run_requests(scenario: str, count: int) -> None:
    """Runs WARM_UP, then `count`, requests of the scenario in this process."""
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from rest_framework_simplejwt.tokens import RefreshToken

    from flagship.models import User

    application = get_wsgi_application()
    requests = scenario_requests(scenario, count)
    tokens = {
        email: str(RefreshToken.for_user(User.objects.get(email=email)).access_token)
        for email in {email for email, *_ in requests}
    }
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for email, method, path, body in requests:
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8400",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8400",
            "HTTP_AUTHORIZATION": f"Bearer {tokens[email]}",
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
            sys.exit(f"{method} {path} answered {statuses[-1]}")


def counted_instructions(source: Path, scenario: str, requests: int) -> int:
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
                scenario,
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
        (scenario,) = args.scenarios
        run_requests(scenario, args.requests)
        return
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind: apt-get install -y valgrind")
    source = args.source.resolve()
    for scenario in args.scenarios or SCENARIOS:
        short = counted_instructions(source, scenario, SHORT)
        long = counted_instructions(source, scenario, LONG)
        per_request = (long - short) / (LONG - SHORT)
        print(
            f"{SCENARIOS[scenario]}: {per_request / 1e6:.2f} million instructions per request "
            f"({source})",
            flush=True,
        )


if __name__ == "__main__":
    main()
