"""Two gunicorn servers on one PostgreSQL database; reviewers race on each request through
different servers at the same instant. Each request ends in exactly one terminal state and its
change is applied at most once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import RefreshToken

from approvals.models import ApprovalRequest, ChangeType, Status
from audit.management.commands.verify_audit import first_broken_link
from audit.models import AuditEntry
from flags.models import Flag, FlagState, FlagType
from tests.servers import Server, database_url, free_ports

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    url = database_url(connection.settings_dict)
    servers = [
        Server(url, port=port, log_path=tmp_path / f"server-{port}.log") for port in free_ports(2)
    ]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_healthy()
        yield servers
    finally:
        for server in servers:
            server.stop()


def token(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


def pending_requests(acme, requestor, count: int, prefix: str) -> list[ApprovalRequest]:
    """One pending request per fresh flag, so applying one never conflicts with another."""
    requests = []
    for index in range(count):
        flag = Flag.create_audited(
            by=requestor,
            project=acme.project,
            key=f"{prefix}-{index}",
            name=f"{prefix} {index}",
            flag_type=FlagType.BOOLEAN,
            default_value=False,
        )
        requests.append(
            ApprovalRequest.propose(
                flag=flag,
                environment=acme.production,
                requestor=requestor,
                change_type=ChangeType.ENABLE,
            )
        )
    return requests


def race(pairs) -> list[tuple]:
    """Each pair is two zero-argument calls fired together (a barrier per pair); up to eight
    pairs run side by side. Returns the pair of results for each pair, in order."""

    def fire(pair):
        barrier = threading.Barrier(2)
        results = [None, None]

        def run(index):
            barrier.wait()
            results[index] = pair[index]()

        threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return tuple(results)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fire, pairs))


def versions(requests) -> dict:
    states = FlagState.objects.filter(
        flag_id__in=[request.flag_id for request in requests],
        environment_id=requests[0].environment_id,
    )
    return {state.flag_id: state.version for state in states}


def assert_chain_unbroken(org):
    """The audit entries both servers wrote at once form one chain, as verify_audit checks it."""
    assert first_broken_link(org) is None


def assert_decided_exactly_once(requests, outcomes, versions_before, winning_status):
    assert_chain_unbroken(requests[0].org)
    applied = AuditEntry.objects.filter(action="flag.approved_change_applied")
    versions_after = versions(requests)
    for request, (approve, other) in zip(requests, outcomes, strict=True):
        assert sorted([approve[0], other[0]]) == [200, 409], (approve, other)
        request.refresh_from_db()
        entries = applied.filter(metadata__approval_id=str(request.pk)).count()
        if approve[0] == 200:
            assert request.status == Status.APPLIED
            assert entries == 1
            assert versions_after[request.flag_id] == versions_before[request.flag_id] + 1
        else:
            assert request.status == winning_status
            assert entries == 0
            assert versions_after[request.flag_id] == versions_before[request.flag_id]


def test_two_reviewers_on_two_servers_apply_each_change_exactly_once(
    two_servers, acme, developer, admin, second_admin
):
    first, second = two_servers
    requests = pending_requests(acme, developer, 50, "race")
    versions_before = versions(requests)
    admin_token, second_admin_token = token(admin), token(second_admin)

    def approve(server, bearer, request):
        path = f"/v1/approvals/{request.pk}/review"
        return lambda: server.request("POST", path, {"action": "approve"}, bearer)

    outcomes = race(
        (approve(first, admin_token, request), approve(second, second_admin_token, request))
        for request in requests
    )

    for request, (one, other) in zip(requests, outcomes, strict=True):
        assert sorted([one[0], other[0]]) == [200, 409], (one, other)
        loser = one if one[0] == 409 else other
        assert loser[1] == {"error": "approval request is no longer pending"}
        request.refresh_from_db()
        assert request.status == Status.APPLIED
        assert request.reviews.count() == 1
    applied = AuditEntry.objects.filter(action="flag.approved_change_applied")
    assert sorted(applied.values_list("metadata__approval_id", flat=True)) == sorted(
        str(request.pk) for request in requests
    )
    versions_after = versions(requests)
    assert all(versions_after[flag] == versions_before[flag] + 1 for flag in versions_before)
    assert_chain_unbroken(acme.org)


def test_approve_racing_reject_on_two_servers_decides_each_request_once(
    two_servers, acme, developer, admin, second_admin
):
    first, second = two_servers
    requests = pending_requests(acme, developer, 20, "approve-reject")
    versions_before = versions(requests)
    admin_token, second_admin_token = token(admin), token(second_admin)

    def review(server, bearer, request, action):
        path = f"/v1/approvals/{request.pk}/review"
        return lambda: server.request("POST", path, {"action": action}, bearer)

    outcomes = race(
        (
            review(first, admin_token, request, "approve"),
            review(second, second_admin_token, request, "reject"),
        )
        for request in requests
    )

    assert_decided_exactly_once(requests, outcomes, versions_before, Status.REJECTED)


def test_approve_racing_cancel_on_two_servers_decides_each_request_once(
    two_servers, acme, developer, admin
):
    first, second = two_servers
    requests = pending_requests(acme, developer, 20, "approve-cancel")
    versions_before = versions(requests)
    admin_token, developer_token = token(admin), token(developer)

    def approve(request):
        path = f"/v1/approvals/{request.pk}/review"
        return lambda: first.request("POST", path, {"action": "approve"}, admin_token)

    def cancel(request):
        path = f"/v1/approvals/{request.pk}/cancel"
        return lambda: second.request("POST", path, {}, developer_token)

    outcomes = race((approve(request), cancel(request)) for request in requests)

    assert_decided_exactly_once(requests, outcomes, versions_before, Status.CANCELLED)
