"""The Flagship benchmark: load 1M approval requests into PostgreSQL, serve the app with
gunicorn, and measure each endpoint with wrk at 16 connections against a bare-DRF ceiling.

    make bench                       # load (about a minute and a half) and measure
    python bench/run.py --skip-load  # measure again on the loaded database

Everything talks to 127.0.0.1 only. See bench/README.md for the figures.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "flagship_bench"
PG = "postgres://postgres@127.0.0.1:5432"
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-load", action="store_true", help="reuse the loaded database")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 4)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 1)))
    parser.add_argument(
        "--worker-class", default=os.environ.get("BENCH_WORKER_CLASS", "sync"), help="gunicorn's"
    )
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="measure every scenario this many times, in turn, and report the medians",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args()


def server_environment(port: int) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DATABASE}",
        "DEBUG": "false",
        # Plain HTTP on loopback, as behind a proxy that terminates TLS; otherwise every request
        # would be answered with a redirect to https.
        "HTTPS": "false",
        # The benchmark writes far faster than one user is allowed to.
        "WRITE_THROTTLE_RATE": "10000000/min",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "BENCH_ENDPOINTS": "true",
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
    }


def load_database(env: dict) -> None:
    import psycopg

    started = time.monotonic()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DATABASE}")
    subprocess.run([PYTHON, str(ROOT / "bench" / "load.py")], check=True, env=env, cwd=ROOT)
    log(f"database loaded in {time.monotonic() - started:.1f}s")


def prepare(env: dict, workdir: Path) -> dict:
    """Tokens, ids and the page-2,000 cursor, computed by Django against the loaded data."""
    script = ROOT / "bench" / "prepare.py"
    output = subprocess.run(
        [PYTHON, str(script), str(workdir)],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output)


def start_server(env: dict, args) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--config",
        str(ROOT / "bench" / "gunicorn.conf.py"),
        "flagship.wsgi",
    ]
    server_env = {
        **env,
        "WEB_CONCURRENCY": str(args.workers),
        "WEB_THREADS": str(args.threads),
        "WEB_WORKER_CLASS": args.worker_class,
    }
    server = subprocess.Popen(command, env=server_env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    raise SystemExit("gunicorn did not answer /healthz within 30 s")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU seconds of each of these processes that is still running."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two samples by the processes alive at the second one."""
    return sum(total - before.get(pid, 0.0) for pid, total in after.items())


def server_pids(server: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [server.pid, *map(int, children)]


def database_pids() -> list[int]:
    """The PostgreSQL backends serving the bench database (same host, so /proc shows them)."""
    import psycopg

    with psycopg.connect(f"{PG}/{DATABASE}") as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DATABASE],
        ).fetchall()
    return [pid for (pid,) in rows]


def run_wrk(args, scenario: dict, workdir: Path, seconds: int) -> dict:
    paths_file = workdir / f"{scenario['name']}.paths"
    paths_file.write_text("\n".join(scenario["paths"]) + "\n")
    result_file = workdir / f"{scenario['name']}.json"
    result_file.unlink(missing_ok=True)
    threads = 2
    env = {
        **os.environ,
        "BENCH_TOKEN": scenario.get("token", ""),
        "BENCH_METHOD": scenario.get("method", "GET"),
        "BENCH_PATHS": str(paths_file),
        "BENCH_THREADS": str(threads),
        "BENCH_RESULT": str(result_file),
    }
    if "body" in scenario:
        env["BENCH_BODY"] = json.dumps(scenario["body"])
    subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{args.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "wrk.lua"),
            f"http://127.0.0.1:{args.port}",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(result_file.read_text())


def scenarios(prepared: dict) -> list[dict]:
    reader, reviewer = prepared["reader_token"], prepared["reviewer_token"]
    return [
        {"name": "ping", "label": "bare DRF ceiling (/v1/bench/ping)", "paths": ["/v1/bench/ping"]},
        {
            "name": "list",
            "label": "list, status=pending, 50/page, page 1",
            "token": reader,
            "paths": ["/v1/approvals?status=pending&limit=50"],
        },
        {
            "name": "list_first",
            "label": "list, all statuses, 50/page, page 1",
            "token": reader,
            "paths": ["/v1/approvals?limit=50"],
        },
        {
            # Page 2 by cursor beside page 2,000 by cursor: what depth costs, the cursor's own
            # handling (decoding it, one more condition) being the same for both.
            "name": "list_second",
            "label": "list, all statuses, 50/page, page 2 (cursor)",
            "token": reader,
            "paths": [prepared["second_page_path"]],
        },
        {
            "name": "list_deep",
            "label": "list, all statuses, 50/page, page 2,000",
            "token": reader,
            "paths": [prepared["deep_page_path"]],
        },
        {
            "name": "get",
            "label": "get one",
            "token": reader,
            "paths": [f"/v1/approvals/{pk}" for pk in prepared["get_ids"]],
        },
        {
            "name": "create",
            "label": "create",
            "method": "POST",
            "token": prepared["requestor_token"],
            "paths": ["/v1/approvals"],
            "body": prepared["create_body"],
        },
        {
            "name": "review",
            "label": "review + apply",
            "method": "POST",
            "token": reviewer,
            "paths": [f"/v1/approvals/{pk}/review" for pk in prepared["review_ids"]],
            "body": {"action": "approve", "note": "bench", "ignore_conflicts": True},
            # A reviewed request cannot be reviewed again: each round takes its own share.
            "paths_used_up": True,
        },
    ]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    env = server_environment(args.port)
    started = time.monotonic()
    if not args.skip_load:
        load_database(env)
    workdir = Path(tempfile.mkdtemp(prefix="flagship-bench-"))
    prepared = prepare(env, workdir)
    # As `make run` and a deployment do: whitenoise serves the collected files.
    subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), "collectstatic", "--noinput", "--verbosity", "0"],
        check=True,
        env=env,
        cwd=ROOT,
    )
    for scenario in scenarios(prepared):  # too few requests to review fail here, not midway
        if scenario.get("paths_used_up") and (not args.only or scenario["name"] in args.only):
            share_of_round(scenario["paths"], 0, args.rounds)
    server = start_server(env, args)
    measured = []
    try:
        for round_number in range(args.rounds):
            for scenario in scenarios(prepared):
                if args.only and scenario["name"] not in args.only and scenario["name"] != "ping":
                    continue
                if scenario.get("paths_used_up"):
                    scenario["paths"] = share_of_round(scenario["paths"], round_number, args.rounds)
                result = measure(args, scenario, workdir, server)
                if scenario["name"] == "ping":  # each round's first scenario
                    ceiling = result["rps"]
                result["vs_ceiling"] = result["rps"] / ceiling
                measured.append(result)
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
    results = medians(measured)
    report(args, results, time.monotonic() - started)
    failed = [
        result["label"] for result in measured if result["non_2xx"] or result["socket_errors"]
    ]
    if failed:
        # Figures for redirects or errors would flatter the server; they are not results.
        raise SystemExit(f"not every answer was 2xx in: {', '.join(sorted(set(failed)))}")


# A review measurement of 10 s has used up to about 3,700 requests here; a round with fewer
# would come back to requests it already reviewed and fail on the 409s.
REVIEWS_PER_ROUND = 5_000


def share_of_round(paths: list[str], round_number: int, rounds: int) -> list[str]:
    share = len(paths) // rounds
    if share < REVIEWS_PER_ROUND:
        raise SystemExit(
            f"{len(paths)} pending requests to review are too few for {rounds} rounds "
            f"({REVIEWS_PER_ROUND} a round): fewer rounds, or `make bench` to load afresh"
        )
    return paths[round_number * share : (round_number + 1) * share]


def measure(args, scenario: dict, workdir: Path, server) -> dict:
    if scenario.get("method", "GET") == "GET":
        run_wrk(args, scenario, workdir, 2)  # warm-up: connections, caches, plans
    load = load_average()
    app_before, db_before = cpu_seconds(server_pids(server)), cpu_seconds(database_pids())
    result = run_wrk(args, scenario, workdir, args.duration)
    app_after, db_after = cpu_seconds(server_pids(server)), cpu_seconds(database_pids())
    requests = max(result["requests"], 1)
    result.update(
        name=scenario["name"],
        label=scenario["label"],
        load=load,
        app_cpu_ms=cpu_used(app_before, app_after) * 1000 / requests,
        db_cpu_ms=cpu_used(db_before, db_after) * 1000 / requests,
    )
    log(
        f"{scenario['label']}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, non-2xx {result['non_2xx']}, CPU per request "
        f"{result['app_cpu_ms']:.2f} ms app + {result['db_cpu_ms']:.2f} ms db (load {load})"
    )
    return result


def medians(measured: list[dict]) -> list[dict]:
    """One result per scenario, in the order first measured: the median of each figure over
    its rounds (the figures of one round when there was one), with the range of req/s."""
    by_name = {}
    for result in measured:
        by_name.setdefault(result["name"], []).append(result)
    results = []
    for rounds in by_name.values():
        result = dict(rounds[0])
        for figure in ("rps", "vs_ceiling", "p50_ms", "p99_ms", "app_cpu_ms", "db_cpu_ms"):
            result[figure] = statistics.median(each[figure] for each in rounds)
        result["non_2xx"] = sum(each["non_2xx"] for each in rounds)
        result["rps_range"] = (
            min(each["rps"] for each in rounds),
            max(each["rps"] for each in rounds),
        )
        result["load"] = rounds[-1]["load"]
        results.append(result)
    return results


def report(args, results: list[dict], elapsed: float) -> None:
    rounds = args.rounds > 1
    print()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, gunicorn "
        f"{args.workers} {args.worker_class} workers"
        f"{'' if args.worker_class == 'sync' else f' x {args.threads} threads'}, "
        f"wrk {args.connections} connections, "
        f"{args.duration} s each, "
        f"{f'medians of {args.rounds} rounds, ' if rounds else ''}whole run {elapsed:.0f} s"
    )
    print()
    print(
        f"| endpoint | req/s |{' range |' if rounds else ''} p50 ms | p99 ms | non-2xx "
        "| vs ceiling | CPU ms/req app + db | load avg |"
    )
    print(f"|---|---:|{'---:|' if rounds else ''}---:|---:|---:|---:|---:|---|")
    for result in results:
        low, high = result["rps_range"]
        print(
            f"| {result['label']} | {result['rps']:.0f} |"
            f"{f' {low:.0f}-{high:.0f} |' if rounds else ''} {result['p50_ms']:.1f} | "
            f"{result['p99_ms']:.1f} | {result['non_2xx']} | {result['vs_ceiling']:.2f} | "
            f"{result['app_cpu_ms']:.2f} + {result['db_cpu_ms']:.2f} | {result['load']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
