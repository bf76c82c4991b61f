import re

from django.contrib.auth import password_validation
from rest_framework import serializers

from flagship.models import Membership, Organization, Role, User

RFC3339_OFFSET = re.compile(r"(Z|z|[+-]\d{2}:\d{2})$")


def json_type_problem(field, value) -> str | None:
    """DRF coerces "yes" to True, "2" to 2 and 5 to "5"; a JSON API takes the JSON types only."""
    if value is None:
        return None  # allow_null is DRF's to check
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        return None if is_integer else "Must be an integer."
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.DateTimeField) and (
        not isinstance(value, str) or not RFC3339_OFFSET.search(value.strip())
    ):
        return "Must be an RFC 3339 timestamp with a time zone, e.g. 2026-04-01T09:00:00Z."
    return None


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming them, instead of silently dropping them, and
    values of the wrong JSON type instead of coercing them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name: field for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - set(writable))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}
                    | {"non_field_errors": [f"Unknown field(s): {', '.join(unknown)}."]}
                )
            wrong_types = {
                name: [problem]
                for name, value in data.items()
                if (problem := json_type_problem(writable[name], value))
            }
            if wrong_types:
                raise serializers.ValidationError(wrong_types)
        return super().to_internal_value(data)


class UUIDStringField(serializers.UUIDField):
    """A UUID given as a string; DRF would also take integers and turn 42 into a UUID."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]


class UserSerializer(serializers.ModelSerializer):
    role = serializers.CharField(source="membership.role", read_only=True)
    org_id = serializers.UUIDField(source="membership.org_id", read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "org_id"]


class LoginSerializer(StrictSerializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)


class RefreshSerializer(StrictSerializer):
    refresh_token = serializers.CharField(max_length=4096)


class MemberSerializer(serializers.ModelSerializer):
    """A membership shown as the person and their role; `id` is the user's id."""

    id = serializers.UUIDField(source="user.id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at"]


class MemberCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    password = serializers.CharField(max_length=1024, trim_whitespace=False, write_only=True)
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_email(self, value):
        value = value.lower()
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("A user with this email already exists.")
        return value

    def validate_password(self, value):
        password_validation.validate_password(value)
        return value


class MemberUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
