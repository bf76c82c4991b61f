from django.contrib.auth import password_validation
from rest_framework import serializers

from flagship.models import Membership, Organization, Role, User


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming them, instead of silently dropping them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}
                    | {"non_field_errors": [f"Unknown field(s): {', '.join(unknown)}."]}
                )
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
