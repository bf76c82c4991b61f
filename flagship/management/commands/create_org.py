import json

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from flagship.bootstrap import create_organization
from flagship.models import Organization, User


class Command(BaseCommand):
    help = (
        "Creates an organization with its owner, a default project 'web' and the environments "
        "development, staging and production (protected); prints the ids as JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", required=True)
        parser.add_argument("--owner-name", default="")
        parser.add_argument("--slug", default="")

    def handle(self, *args, **options):
        slug = options["slug"] or slugify(options["name"])
        if not slug:
            raise CommandError("give a --slug; none could be derived from the name")
        if Organization.objects.filter(slug=slug).exists():
            raise CommandError(f"an organization with slug '{slug}' exists")
        email = options["owner_email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise CommandError(f"a user with email '{email}' exists")
        try:
            password_validation.validate_password(options["owner_password"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        org, owner, project = create_organization(
            name=options["name"],
            slug=slug,
            owner_email=email,
            owner_password=options["owner_password"],
            owner_name=options["owner_name"],
        )
        self.stdout.write(
            json.dumps(
                {
                    "organization_id": str(org.pk),
                    "organization_slug": org.slug,
                    "owner_id": str(owner.pk),
                    "project_id": str(project.pk),
                    "environments": {
                        environment.slug: str(environment.pk)
                        for environment in project.environments.order_by("created_at")
                    },
                },
                indent=2,
            )
        )
