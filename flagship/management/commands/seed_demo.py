from django.core.management.base import BaseCommand
from django.db import transaction

from approvals.models import ApprovalRequest, ChangeType
from flags.models import Flag, FlagType
from flagship.bootstrap import create_organization
from flagship.models import Membership, Organization, Role, User

DEMO_PASSWORD = "flagship-demo"
DEMO_PEOPLE = (
    ("admin@acme.test", "Ada Admin", Role.ADMIN),
    ("dev@acme.test", "Dev Developer", Role.DEVELOPER),
    ("viewer@acme.test", "Vic Viewer", Role.VIEWER),
)
DEMO_FLAGS = (
    {
        "key": "new-checkout",
        "name": "New checkout",
        "description": "The one-page checkout flow.",
        "flag_type": FlagType.BOOLEAN,
        "default_value": False,
        "tags": ["payments"],
    },
    {
        "key": "search-ranking",
        "name": "Search ranking model",
        "description": "Which ranking model serves search results.",
        "flag_type": FlagType.STRING,
        "default_value": "bm25",
        "tags": ["search"],
    },
    {
        "key": "max-cart-items",
        "name": "Maximum cart items",
        "description": "How many items a cart holds.",
        "flag_type": FlagType.NUMBER,
        "default_value": 50,
        "tags": ["payments"],
    },
    {
        "key": "dark-mode",
        "name": "Dark mode",
        "description": "Offer the dark theme.",
        "flag_type": FlagType.BOOLEAN,
        "default_value": False,
        "tags": ["ui"],
    },
)


class Command(BaseCommand):
    help = (
        "Loads the demo organization Acme (owner/admin/dev/viewer@acme.test, password "
        f"'{DEMO_PASSWORD}'), project 'web' with development, staging and a protected "
        "production, a few flags and pending requests. Running it again changes nothing."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        if Organization.objects.filter(slug="acme").exists():
            self.stdout.write("Demo data already present; nothing to do.")
            return
        org, owner, project = create_organization(
            name="Acme",
            slug="acme",
            owner_email="owner@acme.test",
            owner_password=DEMO_PASSWORD,
            owner_name="Olive Owner",
        )
        people = {}
        for email, name, role in DEMO_PEOPLE:
            user = User.objects.create_user(email=email, password=DEMO_PASSWORD, name=name)
            Membership.objects.create(user=user, org=org, role=role)
            people[role] = user
        flags = {
            spec["key"]: Flag.create_audited(by=owner, project=project, **spec)
            for spec in DEMO_FLAGS
        }
        production = project.environments.get(slug="production")
        developer = people[Role.DEVELOPER]
        ApprovalRequest.propose(
            flag=flags["dark-mode"],
            environment=production,
            requestor=developer,
            change_type=ChangeType.ENABLE,
            description="Dark mode passed QA on staging; turn it on for everyone.",
        )
        ApprovalRequest.propose(
            flag=flags["search-ranking"],
            environment=production,
            requestor=developer,
            change_type=ChangeType.UPDATE_STATE,
            payload={
                "enabled": True,
                "variants": [
                    {"key": "bm25", "value": "bm25", "weight": 8000},
                    {"key": "neural", "value": "neural-v2", "weight": 2000},
                ],
            },
            description="A/B test the neural ranker on 20% of traffic.",
        )
        ApprovalRequest.propose(
            flag=flags["max-cart-items"],
            environment=production,
            requestor=people[Role.ADMIN],
            change_type=ChangeType.UPDATE_STATE,
            payload={
                "enabled": True,
                "default_value": 100,
                "rules": [
                    {
                        "description": "Beta customers first",
                        "conditions": [
                            {"attribute": "plan", "operator": "in", "values": ["beta", "pro"]}
                        ],
                        "value": 200,
                        "match_type": "all",
                    }
                ],
            },
            description="Raise the cart limit; beta and pro plans get 200.",
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organization Acme created. Log in as owner@acme.test, admin@acme.test, "
                f"dev@acme.test or viewer@acme.test with password '{DEMO_PASSWORD}'. "
                f"Project id: {project.pk}"
            )
        )
