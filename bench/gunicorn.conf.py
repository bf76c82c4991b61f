"""Gunicorn for the benchmark: the production settings minus the access log, whose line per
request would be measured too. Workers, threads and worker class from WEB_CONCURRENCY,
WEB_THREADS and WEB_WORKER_CLASS (bench/run.py sets them).

The bench uses sync workers, as behind a buffering proxy: each takes the next connection only
when it is free, so wrk's 16 connections queue fairly. A gthread worker accepts keep-alive
connections while busy, so one worker could hold more of them than another, and their
requests waited behind one another: a p99 of 200 ms where sync workers give 70 ms."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8400')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
# Gunicorn runs gthread whenever threads > 1, so a sync worker gets one thread.
threads = 1 if worker_class == "sync" else int(os.environ.get("WEB_THREADS", "1"))
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "warning"
