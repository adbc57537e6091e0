"""The pipeline's data: stages, sources, leads and their append-only activity timeline."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class Stage(models.Model):
    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    name = models.CharField(max_length=80, unique=True)
    position = models.PositiveIntegerField(default=0, help_text="Board order, left to right.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.OPEN)
    archived = models.BooleanField(
        default=False, help_text="Archived stages leave the board; their leads keep them."
    )

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.name

    @property
    def is_lost(self):
        return self.kind == self.Kind.LOST

    def available_moves(self):
        """The stages a lead in this stage may move to."""
        return Stage.objects.filter(archived=False).exclude(pk=self.pk)


class Source(models.Model):
    name = models.CharField(max_length=80, unique=True)
    archived = models.BooleanField(default=False, help_text="Archived sources are not offered for new leads.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class LeadQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleted_at__isnull=True)


class Lead(models.Model):
    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    # Stored normalised (lower-case e-mail, E.164 phone) by the services; "" when absent.
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    company = models.CharField(max_length=200, blank=True)
    title = models.CharField("job title", max_length=200, blank=True)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="leads")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_leads",
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="leads")
    stage_changed_at = models.DateTimeField(default=timezone.now)
    lost_reason = models.CharField(max_length=500, blank=True)
    value = models.DecimalField("expected value", max_digits=12, decimal_places=2, default=0)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_leads",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LeadQuerySet.as_manager()

    class Meta:
        ordering = ["-stage_changed_at", "-id"]
        constraints = [
            # The database, not only the service, refuses a second live lead with one e-mail/phone.
            models.UniqueConstraint(
                fields=["email"],
                condition=Q(deleted_at__isnull=True) & ~Q(email=""),
                name="lead_unique_live_email",
            ),
            models.UniqueConstraint(
                fields=["phone"],
                condition=Q(deleted_at__isnull=True) & ~Q(phone=""),
                name="lead_unique_live_phone",
            ),
            models.CheckConstraint(condition=~Q(email="", phone=""), name="lead_has_email_or_phone"),
            models.CheckConstraint(condition=Q(value__gte=0), name="lead_value_not_negative"),
        ]
        indexes = [
            # A board column: live leads of one stage, most recently moved first.
            models.Index(
                fields=["stage", "-stage_changed_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="lead_board_column",
            ),
            models.Index(
                fields=["owner", "stage"],
                condition=Q(deleted_at__isnull=True),
                name="lead_owner_stage",
            ),
            models.Index(
                fields=["source", "stage"],
                condition=Q(deleted_at__isnull=True),
                name="lead_source_stage",
            ),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("leads:detail", args=[self.pk])

    @property
    def name(self):
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_deleted(self):
        return self.deleted_at is not None


class ActivityQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The activity timeline is append-only")

    def delete(self):
        raise TypeError("The activity timeline is append-only")


class Activity(models.Model):
    """One thing that happened to a lead. Append-only: the timeline is the audit trail."""

    class Kind(models.TextChoices):
        NOTE = "note", "Note"
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        STAGE_CHANGED = "stage_changed", "Stage changed"
        OWNER_CHANGED = "owner_changed", "Owner changed"
        DELETED = "deleted", "Deleted"
        RESTORED = "restored", "Restored"
        IMPORTED = "imported", "Imported"
        FOLLOW_UP_DONE = "follow_up_done", "Follow-up done"

    # What a person may log by hand; the rest are written by the services themselves.
    LOGGABLE_KINDS = (Kind.NOTE, Kind.CALL, Kind.MEETING)

    class CallOutcome(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NO_ANSWER = "no_answer", "No answer"
        VOICEMAIL = "voicemail", "Left voicemail"
        WRONG_NUMBER = "wrong_number", "Wrong number"
        CALL_BACK = "call_back", "Asked to call back"

    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="activities")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="activities",
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name_plural = "activities"
        indexes = [models.Index(fields=["lead", "-occurred_at", "-id"], name="activity_timeline")]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.lead_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("The activity timeline is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The activity timeline is append-only")


class IdempotencyKey(models.Model):
    """The first response to a POST sent with an Idempotency-Key, replayed for its retries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # Which endpoint and body the key was first used with; a different body is refused (422).
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    # JSON text, not jsonb: PostgreSQL's jsonb would reorder keys, and a replay must be byte-identical.
    response_body = models.TextField(blank=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user")]

    def __str__(self):
        return self.key
