"""Scheduled changes applied by real `run_worker` processes on PostgreSQL."""

import signal
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from approvals.models import ApprovalRequest, ChangeType, Status
from audit.models import AuditEntry
from flags.models import Flag, FlagState, FlagType
from tests.processes import (
    DatabaseProxy,
    WorkerProcess,
    database_address,
    wait_until,
    worker_database_url,
)

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

APPLIED = "flag.approved_change_applied"


def make_due_requests(acme, owner, developer, admin, count: int) -> list:
    """`count` approved requests, one flag each (so none conflicts with another), due now."""
    ids = []
    for number in range(count):
        flag = Flag.create_audited(
            by=owner,
            project=acme.project,
            key=f"scheduled-{number}",
            name=f"Scheduled {number}",
            flag_type=FlagType.BOOLEAN,
            default_value=False,
        )
        request = ApprovalRequest.propose(
            flag=flag,
            environment=acme.production,
            requestor=developer,
            change_type=ChangeType.ENABLE,
            execution_date=timezone.now() + timedelta(hours=1),
        )
        request.approve(by=admin)
        ids.append(request.pk)
    ApprovalRequest.objects.filter(pk__in=ids).update(
        execution_date=timezone.now() - timedelta(seconds=1)
    )
    assert ApprovalRequest.objects.due().count() == count
    return ids


def applied_count(ids) -> int:
    return ApprovalRequest.objects.filter(pk__in=ids, status=Status.APPLIED).count()


def assert_each_applied_exactly_once(ids, env) -> None:
    entries = AuditEntry.objects.filter(action=APPLIED)
    assert entries.count() == len(ids)
    assert sorted(entries.values_list("metadata__approval_id", flat=True)) == sorted(
        str(pk) for pk in ids
    )
    assert set(entries.values_list("actor_type", flat=True)) == {"system"}
    states = FlagState.objects.filter(environment=env, flag__key__startswith="scheduled-")
    assert states.count() == len(ids)
    # One write per state: enabled once, version bumped from 1 to 2 and no further.
    assert set(states.values_list("enabled", "version")) == {(True, 2)}


def assert_no_request_half_applied(ids, env) -> None:
    """A request is applied exactly when its flag state was written and its audit entry exists."""
    audited = set(
        AuditEntry.objects.filter(action=APPLIED).values_list("metadata__approval_id", flat=True)
    )
    for request in ApprovalRequest.objects.filter(pk__in=ids).select_related("flag"):
        state = FlagState.objects.get(flag=request.flag, environment=env)
        applied = request.status == Status.APPLIED
        assert state.enabled is applied, request.pk
        assert state.version == (2 if applied else 1), request.pk
        assert (str(request.pk) in audited) is applied, request.pk
        assert (request.applied_at is not None) is applied, request.pk


def test_three_workers_apply_two_hundred_due_requests_exactly_once(
    acme, owner, developer, admin, tmp_path
):
    ids = make_due_requests(acme, owner, developer, admin, 200)
    connection.close()

    workers = [
        WorkerProcess(tmp_path / f"worker-{number}.log", "--exit-when-idle") for number in range(3)
    ]
    exit_codes = [worker.wait(timeout=120) for worker in workers]

    assert exit_codes == [0, 0, 0], [worker.output() for worker in workers]
    assert applied_count(ids) == 200
    assert_each_applied_exactly_once(ids, acme.production)
    applied_per_worker = [
        worker.output().count("applied scheduled approval request") for worker in workers
    ]
    assert sum(applied_per_worker) == 200, applied_per_worker
    # They really ran side by side (the batch takes a few seconds; each worker gets a share).
    assert sum(1 for count in applied_per_worker if count) >= 2, applied_per_worker


def test_worker_killed_mid_run_leaves_nothing_half_applied_and_another_finishes(
    acme, owner, developer, admin, tmp_path
):
    ids = make_due_requests(acme, owner, developer, admin, 200)
    connection.close()

    doomed = WorkerProcess(tmp_path / "doomed.log")
    wait_until(lambda: applied_count(ids) >= 20, timeout=60, message="the first applies")
    doomed.kill()
    connection.close()

    partly = applied_count(ids)
    assert 20 <= partly < 200, "the worker should be killed in the middle of the batch"
    assert_no_request_half_applied(ids, acme.production)

    finisher = WorkerProcess(tmp_path / "finisher.log", "--exit-when-idle")
    assert finisher.wait(timeout=120) == 0, finisher.output()

    assert_each_applied_exactly_once(ids, acme.production)
    assert finisher.output().count("applied scheduled approval request") == 200 - partly


def test_worker_stops_cleanly_on_sigterm(db, tmp_path):
    worker = WorkerProcess(tmp_path / "worker.log")
    wait_until(lambda: "started" in worker.output(), timeout=30, message="the worker to start")

    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0
    assert "SIGTERM received, stopping" in worker.output()
    assert "stopped" in worker.output()


def test_worker_survives_a_database_restart(acme, owner, developer, admin, tmp_path):
    proxy = DatabaseProxy(*database_address())
    worker = WorkerProcess(
        tmp_path / "worker.log", DATABASE_URL=worker_database_url(port=proxy.port)
    )
    try:
        wait_until(lambda: "started" in worker.output(), timeout=30, message="the worker to start")
        proxy.stop()
        wait_until(
            lambda: "database unavailable" in worker.output(),
            timeout=30,
            message="the worker to notice the database is gone",
        )
        ids = make_due_requests(acme, owner, developer, admin, 1)
        proxy.start()

        wait_until(lambda: applied_count(ids) == 1, timeout=60, message="the apply")
        assert worker.process.poll() is None, "the worker kept running through the outage"
    finally:
        assert worker.stop() == 0
        proxy.stop()
    assert "applied scheduled approval request" in worker.output()
