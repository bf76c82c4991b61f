"""The background worker: applies scheduled changes when due, and sends queued emails and
webhook deliveries.

PostgreSQL row locks (`SKIP LOCKED`) coordinate any number of workers, so there is no broker;
on SQLite, run one. SIGTERM or SIGINT lets the current item finish, then the worker exits 0.
"""

import logging
import os
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from approvals.notify import send_next_due
from approvals.scheduler import apply_next_due
from audit.webhooks import deliver_next_due

logger = logging.getLogger("flagship.worker")

MAX_BACKOFF_SECONDS = 30.0
# Set by the process that spawns the worker (gunicorn's master in `make run`); the worker
# stops when that process is gone, so it never outlives the server it was started with.
PARENT_PID_VARIABLE = "FLAGSHIP_WORKER_PARENT_PID"


class Command(BaseCommand):
    help = (
        "Applies approved requests whose execution date has passed and sends queued emails "
        "and webhook deliveries. Runs until SIGTERM/SIGINT (or, with --exit-when-idle, until "
        "nothing is due)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--exit-when-idle",
            action="store_true",
            help="Stop as soon as nothing is due (for tests and one-off runs).",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=float(settings.WORKER_POLL_SECONDS),
            help="Seconds to wait when nothing is due (default: WORKER_POLL_SECONDS).",
        )

    def handle(self, *args, exit_when_idle=False, poll_interval=1.0, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        parent_pid = os.environ.get(PARENT_PID_VARIABLE)
        logger.info("worker %s started (poll every %ss)", os.getpid(), poll_interval)
        backoff = 1.0
        while not self.stopping:
            if parent_pid and os.getppid() != int(parent_pid):
                logger.info("worker %s: the server that started it is gone; stopping", os.getpid())
                break
            try:
                close_old_connections()
                worked = self.work_once()
            except (OperationalError, InterfaceError) as exc:
                logger.warning(
                    "database unavailable (%s); retrying in %.0f s", str(exc).strip(), backoff
                )
                self.reconnect_later(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except Exception:
                # A bug must not turn into a hot loop on the same row; the next pass retries.
                logger.exception("worker pass failed; retrying in %.0f s", backoff)
                self.reconnect_later(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = 1.0
            if worked:
                continue
            if exit_when_idle:
                break
            self.sleep(poll_interval)
        connection.close()
        logger.info("worker %s stopped", os.getpid())

    def work_once(self) -> bool:
        """One due scheduled change, one due email and one due webhook delivery, so none
        starves the others. True when there was something to do."""
        applied = apply_next_due()
        emailed = send_next_due()
        delivered = deliver_next_due()
        return applied is not None or emailed is not None or delivered is not None

    def request_stop(self, signum, frame):
        logger.info("worker %s: %s received, stopping", os.getpid(), signal.Signals(signum).name)
        self.stopping = True

    def reconnect_later(self, seconds: float) -> None:
        try:
            connection.close()
        except Exception:  # The connection is already broken; a fresh one is opened next pass.
            logger.debug("closing the broken database connection failed", exc_info=True)
        self.sleep(seconds)

    def sleep(self, seconds: float) -> None:
        """Sleeps in short steps so a stop request is honoured promptly."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 0.2))
