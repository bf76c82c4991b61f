"""Gunicorn settings for `make run`; PORT, WEB_CONCURRENCY and friends from the environment."""

import os
import subprocess
import sys
from pathlib import Path

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread (the default) copes with slow clients and keep-alive when gunicorn faces them itself;
# behind a buffering proxy, sync workers (WEB_CONCURRENCY about twice the cores) give steadier
# latency under load. See bench/README.md.
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
# Gunicorn runs gthread whenever threads > 1, so a sync worker gets one thread.
threads = 1 if worker_class == "sync" else int(os.environ.get("WEB_THREADS", "4"))
timeout = 30
graceful_timeout = 10
accesslog = "-"
errorlog = "-"


# `make run` starts one background worker (scheduled changes, webhooks) beside the web server
# and stops it with the server. RUN_WORKER=false leaves it out (when workers run elsewhere).
def on_starting(server):
    if os.environ.get("RUN_WORKER", "true").strip().lower() in {"0", "false", "no", "off"}:
        return
    project_dir = Path(__file__).resolve().parent.parent
    server.flagship_worker = subprocess.Popen(
        [sys.executable, str(project_dir / "manage.py"), "run_worker"],
        cwd=project_dir,
        env={**os.environ, "FLAGSHIP_WORKER_PARENT_PID": str(os.getpid())},
    )
    server.log.info("Started the Flagship worker (pid %s)", server.flagship_worker.pid)


def on_exit(server):
    worker = getattr(server, "flagship_worker", None)
    if worker is None:
        return
    # Gunicorn's master reaps every child, the worker included, so poll() may already say 0.
    if worker.poll() is None:
        worker.terminate()
    try:
        worker.wait(timeout=graceful_timeout + 5)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    server.log.info("Stopped the Flagship worker")
