"""API shapes: read serializers render rows; input serializers only parse, the services decide."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leads.models import Activity, Lead, Source, Stage
from leads.normalization import split_full_name

# --- reading ------------------------------------------------------------------------------------


class SourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = ["id", "name", "archived"]


class StageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = ["id", "name", "position", "kind", "archived"]


class UserSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = get_user_model()
        fields = ["id", "name", "email", "role", "active"]

    def get_name(self, user) -> str:
        return str(user)


class RefSerializer(serializers.Serializer):
    """A related row as {id, name}: enough for a card, no extra query."""

    id = serializers.IntegerField()
    name = serializers.CharField()


class StageRefSerializer(RefSerializer):
    kind = serializers.ChoiceField(choices=Stage.Kind.choices)


class OwnerRefSerializer(RefSerializer):
    name = serializers.SerializerMethodField()
    email = serializers.EmailField()

    def get_name(self, user) -> str:
        return str(user)


class LeadSerializer(serializers.ModelSerializer):
    """A lead as integrators read it. Needs stage, source and owner joined (selectors do)."""

    name = serializers.CharField(read_only=True)
    # Not an EmailField: a lead reached only by phone has "" here, which is no e-mail address.
    email = serializers.CharField(read_only=True, help_text='E-mail address, or "" when there is none.')
    source = RefSerializer()
    stage = StageRefSerializer()
    owner = OwnerRefSerializer(allow_null=True)
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True)

    class Meta:
        model = Lead
        fields = [
            "id",
            "name",
            "first_name",
            "last_name",
            "email",
            "phone",
            "company",
            "title",
            "source",
            "stage",
            "owner",
            "stage_changed_at",
            "lost_reason",
            "value",
            "priority",
            "notes",
            "created_by",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = fields


class ActivitySerializer(serializers.ModelSerializer):
    actor = OwnerRefSerializer(allow_null=True)

    class Meta:
        model = Activity
        fields = ["id", "kind", "body", "data", "occurred_at", "actor"]
        read_only_fields = fields


# --- parsing input --------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}], "example": "Facebook"})
class NameOrIdField(serializers.Field):
    """A stage or source given by id (3, "3") or by name, any case ("in progress")."""

    def __init__(self, *, queryset, noun, **kwargs):
        self.queryset, self.noun = queryset, noun
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.fail_unknown(value)
        text = str(value).strip()
        lookup = {"pk": int(text)} if text.isdecimal() and len(text) < 19 else {"name__iexact": text}
        # No name holds a NUL, and PostgreSQL refuses one in a query (a 500, not a 400).
        found = self.queryset.filter(**lookup).first() if "\x00" not in text else None
        if found is None:
            self.fail_unknown(text)
        return found

    def fail_unknown(self, value):
        valid = ", ".join(self.queryset.values_list("name", flat=True))
        raise serializers.ValidationError(
            f"Unknown {self.noun} “{str(value)[:80]}”. Valid {self.noun}s: {valid}."
        )

    def to_representation(self, value):
        return value.name


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}], "example": "In Progress"})
class StageNameOrIdField(NameOrIdField):
    """NameOrIdField documented with a stage's name as its example, not a source's."""


@extend_schema_field(
    {
        "oneOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\d+$"}],
        "nullable": True,
        "example": "1234",
    }
)
class UserIdField(serializers.Field):
    """A user id as an integer or a string of digits; null means unassigned."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        if not text.isdecimal() or len(text) > 18:
            raise serializers.ValidationError("Give the owner as a user id (a whole number), or null.")
        user = get_user_model().objects.filter(pk=int(text)).first()
        if user is None:
            raise serializers.ValidationError(f"There is no user with id {text}.")
        return user

    def to_representation(self, value):
        return value.pk


class LeadInputSerializer(serializers.Serializer):
    """What POST, PUT and PATCH /api/leads/ accept. Unknown and read-only keys are ignored."""

    name = serializers.CharField(
        required=False, max_length=201, help_text="Full name; split into first and last."
    )
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    email = serializers.CharField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
    company = serializers.CharField(required=False, allow_blank=True, max_length=200)
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    source = NameOrIdField(queryset=Source.objects.all(), noun="source", required=False)
    stage = StageNameOrIdField(queryset=Stage.objects.all(), noun="stage", required=False)
    owner = UserIdField(required=False)
    value = serializers.DecimalField(required=False, max_digits=12, decimal_places=2, min_value=0)
    priority = serializers.ChoiceField(required=False, choices=Lead.Priority.choices)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    lost_reason = serializers.CharField(required=False, allow_blank=True, max_length=500)
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="On PUT/PATCH: the version you edited; a newer one answers 409.",
    )

    def validate(self, data):
        if not self.partial and not (data.get("name") or data.get("first_name") or data.get("last_name")):
            raise serializers.ValidationError({"name": ["Give the lead a name (or first_name/last_name)."]})
        return data

    def service_arguments(self):
        """The validated input as keyword arguments for services.create_lead / change_lead."""
        data = dict(self.validated_data)
        data.pop("version", None)
        name = data.pop("name", None)
        if name is not None and "first_name" not in data and "last_name" not in data:
            data["first_name"], data["last_name"] = split_full_name(name)
        return data


class MoveInputSerializer(serializers.Serializer):
    stage = StageNameOrIdField(
        queryset=Stage.objects.all(), noun="stage", help_text="Stage name (any case) or id."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="The version you saw; 409 if stale."
    )
    lost_reason = serializers.CharField(
        required=False, allow_blank=True, max_length=500, help_text="Required when the stage is a lost stage."
    )


class ClaimInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="The version you saw; 409 if stale."
    )


class OwnerInputSerializer(serializers.Serializer):
    owner = UserIdField(help_text="User id (number or string), or null for unassigned.")
    version = serializers.IntegerField(required=False, min_value=1)


class ActivityInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[(k.value, k.label) for k in Activity.LOGGABLE_KINDS])
    body = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    outcome = serializers.ChoiceField(
        required=False,
        allow_blank=True,
        choices=Activity.CallOutcome.choices,
        help_text="Required for calls.",
    )
    duration_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1440)
    occurred_at = serializers.DateTimeField(required=False, help_text="Defaults to now; never in the future.")

    def to_internal_value(self, data):
        kind = data.get("kind") if hasattr(data, "get") else None
        if isinstance(kind, str) and kind in Activity.Kind.values and kind not in Activity.LOGGABLE_KINDS:
            raise serializers.ValidationError(
                {"kind": [f"“{kind}” is written by the system and cannot be posted."]}
            )
        return super().to_internal_value(data)


class StageInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = ["name", "position", "kind", "archived"]


class SourceInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = ["name", "archived"]


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx and 5xx answer."""

    class ErrorDetail(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))

    error = ErrorDetail()
