from django.core.exceptions import ValidationError

from flagship.errors import NotFound


def get_or_404(queryset, what: str, **lookups):
    """The object, or NotFound for absent ids, malformed ids and other organizations' objects
    (the queryset is already scoped to the caller's organization)."""
    if any(isinstance(value, str) and "\x00" in value for value in lookups.values()):
        raise NotFound(f"{what} not found")
    try:
        return queryset.get(**lookups)
    except (queryset.model.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound(f"{what} not found") from None
