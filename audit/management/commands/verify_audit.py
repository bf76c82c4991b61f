from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEntry, hash_entry
from flagship.models import Organization


def first_broken_link(org) -> str | None:
    """Walks the org's chain oldest first; describes the first entry that does not hold."""
    previous = None
    for entry in AuditEntry.objects.chain_of(org.pk).iterator(chunk_size=2000):
        expected_sequence = previous.sequence + 1 if previous else 1
        expected_previous_hash = previous.entry_hash if previous else ""
        problem = None
        if entry.sequence != expected_sequence:
            problem = f"sequence {entry.sequence} where {expected_sequence} was expected"
        elif entry.previous_hash != expected_previous_hash:
            problem = "previous_hash does not match the entry before it"
        elif entry.entry_hash != hash_entry(entry):
            problem = "entry_hash does not match the entry's contents"
        if problem:
            return f"entry {entry.pk} (#{entry.sequence}, {entry.action}): {problem}"
        previous = entry
    return None


class Command(BaseCommand):
    help = "Checks every organization's audit hash chain (or one's, with --org) end to end."

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="check only this organization")

    def handle(self, *args, org=None, **options):
        orgs = Organization.objects.order_by("slug")
        if org is not None:
            orgs = orgs.filter(slug=org)
            if not orgs.exists():
                raise CommandError(f"no organization with slug {org!r}")
        broken = []
        for organization in orgs:
            count = AuditEntry.objects.filter(org=organization).count()
            problem = first_broken_link(organization)
            if problem:
                broken.append(organization.slug)
                self.stderr.write(f"{organization.slug}: BROKEN at {problem}")
            else:
                self.stdout.write(f"{organization.slug}: OK ({count} entries)")
        if broken:
            raise CommandError(f"audit chain broken for: {', '.join(broken)}")
