"""Prints, as JSON, what the wrk scenarios need from the loaded database: tokens, ids to read
and to review, a create body and the paths of pages 2 and 2,000 of the newest-first list.

Reads go to organization bench-0 and writes to bench-1, so the pages the read scenarios show
hold the same rows in every run, however many requests earlier runs created or reviewed."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagship.settings")

PAGE = 2_000
PAGE_SIZE = 50
REVIEW_IDS = 30_000


def list_page_path(org_id, page: int) -> str:
    """The path of this page of the org's newest-first list, by cursor (page 1 has none)."""
    from approvals.models import ApprovalRequest
    from flagship.pagination import encode_cursor

    if page == 1:
        return f"/v1/approvals?limit={PAGE_SIZE}"
    requests = ApprovalRequest.objects.filter(org_id=org_id).order_by("-created_at", "-id")
    last_of_previous_page = requests.values("created_at", "pk")[(page - 1) * PAGE_SIZE - 1]
    cursor = encode_cursor(last_of_previous_page["created_at"], last_of_previous_page["pk"])
    return f"/v1/approvals?limit={PAGE_SIZE}&cursor={cursor}"


def main() -> None:
    import django

    django.setup()
    from rest_framework_simplejwt.tokens import RefreshToken

    from approvals.models import ApprovalRequest, Status
    from flags.models import Environment, Flag
    from flagship.models import User

    reader = User.objects.get(email="admin0@bench.test")
    reviewer = User.objects.get(email="admin1@bench.test")
    requestor = User.objects.get(email="developer1@bench.test")
    requests = ApprovalRequest.objects.filter(org_id=reader.org_id).order_by("-created_at", "-id")

    review_ids = list(
        ApprovalRequest.objects.filter(org_id=reviewer.org_id, status=Status.PENDING)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:REVIEW_IDS]
    )
    production = Environment.objects.get(project__org_id=requestor.org_id, slug="production")
    flag = Flag.objects.filter(project__org_id=requestor.org_id).order_by("key").first()
    print(
        json.dumps(
            {
                "reader_token": str(RefreshToken.for_user(reader).access_token),
                "reviewer_token": str(RefreshToken.for_user(reviewer).access_token),
                "requestor_token": str(RefreshToken.for_user(requestor).access_token),
                "second_page_path": list_page_path(reader.org_id, 2),
                "deep_page_path": list_page_path(reader.org_id, PAGE),
                "get_ids": [str(pk) for pk in requests.values_list("pk", flat=True)[:1000]],
                "review_ids": [str(pk) for pk in review_ids],
                "create_body": {
                    "flag_id": str(flag.pk),
                    "env_id": str(production.pk),
                    "change_type": "enable",
                    "description": "bench",
                },
            }
        )
    )


if __name__ == "__main__":
    main()
