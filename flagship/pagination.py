from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from flagship.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def parse_non_negative_int(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(
            f"{name} must be a non-negative integer", fields={name: ["Must be an integer."]}
        ) from None
    if value < 0:
        raise InvalidInput(
            f"{name} must be a non-negative integer", fields={name: ["Must not be negative."]}
        )
    return value


class EnvelopePagination(BasePagination):
    """`{"data", "total", "limit", "offset", "has_more"}`; limit defaults to 50, capped at 100."""

    def paginate_queryset(self, queryset, request, view=None):
        limit = parse_non_negative_int(request.query_params.get("limit"), "limit", DEFAULT_LIMIT)
        if limit == 0:
            raise InvalidInput("limit must be at least 1", fields={"limit": ["Must be >= 1."]})
        self.limit = min(limit, MAX_LIMIT)
        self.offset = parse_non_negative_int(request.query_params.get("offset"), "offset", 0)
        self.total = queryset.count()
        return list(queryset[self.offset : self.offset + self.limit])

    def get_paginated_response(self, data):
        return Response(
            {
                "data": data,
                "total": self.total,
                "limit": self.limit,
                "offset": self.offset,
                "has_more": self.offset + len(data) < self.total,
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["data", "total", "limit", "offset", "has_more"],
            "properties": {
                "data": schema,
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
                "has_more": {"type": "boolean"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
            },
        ]
