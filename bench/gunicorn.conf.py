"""Gunicorn for the benchmark: the production settings minus the access log, whose line per
request would be measured too. Workers and threads from WEB_CONCURRENCY / WEB_THREADS."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8400')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "1"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "warning"
