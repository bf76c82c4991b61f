from approvals.models import ApprovalRequest, ChangeType, Status


def test_admin_approval_applies_developer_request(acme, developer, admin):
    request = ApprovalRequest.propose(
        flag=acme.flag,
        environment=acme.production,
        requestor=developer,
        change_type=ChangeType.ENABLE,
    )
    request.approve(by=admin)
    assert request.status == Status.APPLIED
