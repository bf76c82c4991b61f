from django.utils.text import slugify
from rest_framework import serializers

from flags.models import FLAG_KEY_PATTERN, Environment, Flag, FlagState, Project
from flags.validation import type_mismatch
from flagship.serializers import StrictModelSerializer, StrictSerializer


class SluggedSerializer(StrictModelSerializer):
    """Derives the slug from the name when none is given and keeps it unique among `siblings()`."""

    taken_message = "This slug is taken."

    def siblings(self):
        raise NotImplementedError

    def validate(self, attrs):
        if "slug" not in attrs and self.instance is None:
            attrs["slug"] = slugify(attrs.get("name", ""))[:100]
            if not attrs["slug"]:
                raise serializers.ValidationError({"slug": ["Give a slug; none could be derived."]})
        slug = attrs.get("slug")
        if slug:
            taken = self.siblings().filter(slug=slug)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise serializers.ValidationError({"slug": [self.taken_message]})
        return attrs


class ProjectSerializer(SluggedSerializer):
    org_id = serializers.UUIDField(read_only=True)
    slug = serializers.SlugField(max_length=100, required=False)

    class Meta:
        model = Project
        fields = ["id", "org_id", "name", "slug", "created_at"]
        read_only_fields = ["id", "org_id", "created_at"]

    taken_message = "A project with this slug exists."

    def siblings(self):
        return Project.objects.filter(org_id=self.context["request"].user.org_id)


class EnvironmentSerializer(SluggedSerializer):
    project_id = serializers.UUIDField(read_only=True)
    slug = serializers.SlugField(max_length=100, required=False)

    class Meta:
        model = Environment
        fields = [
            "id",
            "project_id",
            "name",
            "slug",
            "color",
            "requires_approval",
            "min_approvals",
            "created_at",
        ]
        read_only_fields = ["id", "project_id", "created_at"]

    taken_message = "An environment with this slug exists in the project."

    def siblings(self):
        return Environment.objects.filter(project=self.context["project"])


class FlagSerializer(StrictModelSerializer):
    project_id = serializers.UUIDField(read_only=True)
    key = serializers.RegexField(FLAG_KEY_PATTERN, max_length=100)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=50, required=False
    )
    default_value = serializers.JSONField(required=False, allow_null=True)

    class Meta:
        model = Flag
        fields = [
            "id",
            "project_id",
            "key",
            "name",
            "description",
            "flag_type",
            "default_value",
            "tags",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "project_id", "created_at", "updated_at"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:
            # The key names the flag in URLs and SDKs; the type shapes every stored value.
            fields["key"].read_only = True
            fields["flag_type"].read_only = True
        return fields

    def validate(self, attrs):
        project = self.context["project"]
        key = attrs.get("key")
        if key and Flag.objects.filter(project=project, key=key).exists():
            raise serializers.ValidationError({"key": ["A flag with this key exists."]})
        flag_type = attrs.get("flag_type") or getattr(self.instance, "flag_type", "boolean")
        default_value = attrs.get("default_value")
        problem = default_value is not None and type_mismatch(flag_type, default_value)
        if problem:
            raise serializers.ValidationError({"default_value": [problem]})
        return attrs


class FlagStateSerializer(serializers.ModelSerializer):
    flag_id = serializers.UUIDField(read_only=True)
    flag_key = serializers.CharField(source="flag.key", read_only=True)
    env_id = serializers.UUIDField(source="environment_id", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    requires_approval = serializers.BooleanField(
        source="environment.requires_approval", read_only=True
    )
    default_value = serializers.JSONField(allow_null=True)
    rules = serializers.JSONField()
    variants = serializers.JSONField()

    class Meta:
        model = FlagState
        fields = [
            "flag_id",
            "flag_key",
            "env_id",
            "environment",
            "requires_approval",
            "enabled",
            "default_value",
            "rules",
            "percentage_rollout",
            "variants",
            "version",
            "updated_at",
        ]
        read_only_fields = fields


class FlagStateChangeSerializer(StrictSerializer):
    """The PUT body: any subset of the state fields, plus an optional `version` that makes the
    write conditional (409 when the state moved on). Values are checked against the flag by
    `flags.validation`, the same check approval-request payloads get."""

    enabled = serializers.JSONField(required=False)
    default_value = serializers.JSONField(required=False, allow_null=True)
    rules = serializers.JSONField(required=False)
    percentage_rollout = serializers.JSONField(required=False)
    variants = serializers.JSONField(required=False)
    version = serializers.IntegerField(required=False, min_value=1)
