from approvals.models import ApprovalRequest, ChangeType


def propose_many(workspace, requestor, count: int, environment=None) -> list[ApprovalRequest]:
    """`count` pending enable requests through the real transition, newest last."""
    return [
        ApprovalRequest.propose(
            flag=workspace.flag,
            environment=environment or workspace.production,
            requestor=requestor,
            change_type=ChangeType.ENABLE,
            description=f"request {number}",
        )
        for number in range(count)
    ]
