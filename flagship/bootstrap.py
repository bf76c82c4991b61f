"""Creating an organization ready to use: owner, default project, three environments."""

from django.db import transaction
from django.utils.text import slugify

from audit.models import record
from flags.models import Environment, Project
from flagship.models import Membership, Organization, Role, User

DEFAULT_ENVIRONMENTS = (
    {"name": "development", "slug": "development", "color": "#22c55e"},
    {"name": "staging", "slug": "staging", "color": "#f59e0b"},
    {"name": "production", "slug": "production", "color": "#ef4444", "requires_approval": True},
)


@transaction.atomic
def create_organization(
    *, name: str, owner_email: str, owner_password: str, owner_name: str = "", slug: str = ""
) -> tuple[Organization, User, Project]:
    org = Organization.objects.create(name=name, slug=slug or slugify(name))
    owner = User.objects.create_user(
        email=owner_email, password=owner_password, name=owner_name, is_staff=True
    )
    Membership.objects.create(user=owner, org=org, role=Role.OWNER)
    record(
        org_id=org.pk,
        actor=None,
        action="organization.created",
        resource=org,
        after={"name": org.name, "slug": org.slug, "owner": owner.email},
    )
    project = Project.create_audited(by=None, org_id=org.pk, name="web", slug="web")
    for environment in DEFAULT_ENVIRONMENTS:
        Environment.create_audited(by=None, project=project, **environment)
    return org, owner, project
