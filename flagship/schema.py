"""OpenAPI schema: the bearer scheme of MemberJWTAuthentication and the error responses every
operation can give, so clients (and schema-driven tests) know the `{"error": ...}` shape."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class MemberJWTScheme(SimpleJWTScheme):
    target_class = "flagship.authentication.MemberJWTAuthentication"
    name = "bearerAuth"


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="One human sentence.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation messages per field, for 400 responses.",
    )


ERROR_DESCRIPTIONS = {
    "400": "Invalid input: bad JSON, unknown or invalid fields, bad query parameters.",
    "401": "No token, or an invalid, expired or revoked one.",
    "403": "Your role does not allow this action.",
    "404": "Absent, or belongs to another organization (in the URL or named in the body).",
    "409": "Not allowed in the object's current state (e.g. no longer pending).",
    "415": "The body is not application/json.",
    "429": "Throttled; retry after the number of seconds in Retry-After.",
}


class FlagshipAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        error = self.resolve_serializer(ErrorSerializer, direction).ref
        for code in self.error_codes():
            responses.setdefault(
                code,
                {
                    "description": ERROR_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": error}},
                },
            )
        return responses

    def error_codes(self) -> list[str]:
        writes = self.method not in ("GET", "HEAD", "OPTIONS")
        authenticated = bool(self.view.get_authenticators())
        codes = []
        if writes or self._is_list_view():
            codes.append("400")
        codes.append("401")  # bad credentials on login/refresh, a bad token elsewhere
        if authenticated and writes:
            codes.append("403")
        if "{" in self.path or (authenticated and writes):
            codes.append("404")  # the object in the URL, or one the body names
        if authenticated and writes:
            codes.append("409")
        if writes and self.method != "DELETE":
            codes.append("415")
        if writes:
            codes.append("429")
        return codes
