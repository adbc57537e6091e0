"""The pipeline's data: stages, sources, leads, their append-only timeline, files, follow-ups and notices."""

import uuid

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
    # Set when a merge soft-deleted this lead: the lead that now holds its history.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_leads"
    )

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
            # The API list's order; the included keys let a deep page and the counted filters
            # (stage, source, owner) be found index-only, rows fetched by id (leads/api/pagination.py).
            models.Index(
                fields=["-created_at", "-id"],
                include=["stage", "source", "owner"],
                condition=Q(deleted_at__isnull=True),
                name="lead_list_order",
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


class LeadCount(models.Model):
    """Live leads and their value per (stage, source, owner): exact list counts and board totals
    without scanning leads_lead. Written only by PostgreSQL triggers (migration 0007): each write
    adds a delta row, folded together now and then; a count is the SUM over a key's rows."""

    # No cascade, no database constraint: a stage, source or user can only be deleted when no lead
    # (live or not) refers to it, so its counter rows sum to zero; compaction drops them.
    stage = models.ForeignKey(Stage, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    source = models.ForeignKey(Source, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    count = models.BigIntegerField(default=0)
    value_sum = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    def __str__(self):
        return f"stage {self.stage_id} source {self.source_id} owner {self.owner_id}: {self.count}"


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
        FOLLOW_UP_SCHEDULED = "follow_up_scheduled", "Follow-up scheduled"
        FOLLOW_UP_CANCELLED = "follow_up_cancelled", "Follow-up cancelled"
        CAPTURED = "captured", "Captured from the web form"
        SUBMITTED_AGAIN = "submitted_again", "Submitted again"
        ATTACHMENT_ADDED = "attachment_added", "File attached"
        ATTACHMENT_DELETED = "attachment_deleted", "File deleted"
        MERGED = "merged", "Merged"
        MERGE_UNDONE = "merge_undone", "Merge undone"

    # What a person may log by hand; the rest are written by the services themselves.
    LOGGABLE_KINDS = (Kind.NOTE, Kind.CALL, Kind.MEETING)

    class CallOutcome(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NO_ANSWER = "no_answer", "No answer"
        VOICEMAIL = "voicemail", "Left voicemail"
        WRONG_NUMBER = "wrong_number", "Wrong number"
        CALL_BACK = "call_back", "Asked to call back"

    # No index of its own: activity_timeline starts with lead_id and serves every lookup by lead
    # (a second index cost every timeline write, imports' most of all).
    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="activities", db_index=False)
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
        indexes = [
            models.Index(fields=["lead", "-occurred_at", "-id"], name="activity_timeline"),
            # Dashboard and reports: a date range's moves or calls without reading the whole timeline.
            models.Index(fields=["kind", "occurred_at"], name="activity_kind_time"),
        ]

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


class AssignmentRule(models.Model):
    """How new leads from the capture form get an owner: one row, edited by managers in admin."""

    class Rule(models.TextChoices):
        ROUND_ROBIN = "round_robin", "Round robin among the chosen salespeople"
        UNASSIGNED = "unassigned", "Leave unassigned (the pool)"

    rule = models.CharField(max_length=16, choices=Rule.choices, default=Rule.ROUND_ROBIN)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        help_text="Active salespeople who take new leads in turn. Inactive users are skipped.",
    )
    # Whom the rotation gave the last lead to; the next goes to the member after them.
    last_assigned = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "assignment rule"

    def __str__(self):
        return self.get_rule_display()


def attachment_upload_to(instance, filename):
    # A random path, so no file name can be guessed or collide; the original name is kept apart.
    return f"attachments/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"


class AttachmentQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleted_at__isnull=True)


class Attachment(models.Model):
    """A file on a lead (resume/CV, image, document), downloaded only through a checked view."""

    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="attachments")
    file = models.FileField(upload_to=attachment_upload_to, max_length=255)
    # The sanitised name the uploader gave; used for the download's Content-Disposition.
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [models.Index(fields=["lead", "-uploaded_at"], name="attachment_by_lead")]

    def __str__(self):
        return self.filename


class LeadMerge(models.Model):
    """One lead merged into another: what moved and what was replaced, so it can be undone."""

    survivor = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="merges_in")
    merged = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="merges_out")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # {"field": {"from": survivor's old value, "to": value kept}} for fields taken from the merged lead.
    replaced = models.JSONField(default=dict, blank=True)
    # Primary keys moved from the merged lead to the survivor: {"attachments": [...], "follow_ups": [...]}.
    moved = models.JSONField(default=dict, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.merged_id} into {self.survivor_id}"


class FollowUp(models.Model):
    """A call, meeting, e-mail or to-do scheduled on a lead for someone."""

    class Kind(models.TextChoices):
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        TODO = "todo", "To-do"

    class Outcome(models.TextChoices):
        INTERESTED = "interested", "Interested"
        NOT_INTERESTED = "not_interested", "Not interested"
        NO_ANSWER = "no_answer", "No answer"
        CALL_BACK = "call_back", "Call back"
        FOLLOW_UP_NEEDED = "follow_up_needed", "Follow-up needed"
        OTHER = "other", "Other"

    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="follow_ups")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CALL)
    title = models.CharField(max_length=200)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="follow_ups"
    )
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    notes = models.TextField(blank=True)
    duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    # A client's key for safe retries: creating twice with one key returns the first follow-up.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Set once by send_reminders when it claims the before-due reminder, so it is sent once.
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(
                fields=["assigned_to", "due_at"],
                condition=Q(done_at__isnull=True, cancelled_at__isnull=True),
                name="follow_up_open_by_user",
            ),
            models.Index(
                fields=["lead", "due_at"],
                condition=Q(done_at__isnull=True, cancelled_at__isnull=True),
                name="follow_up_open_by_lead",
            ),
        ]

    def __str__(self):
        return self.title

    @property
    def is_open(self):
        return self.done_at is None and self.cancelled_at is None


class Notification(models.Model):
    """An in-app notice for one user (the bell in the header)."""

    class Kind(models.TextChoices):
        LEAD_ASSIGNED = "lead_assigned", "Lead assigned to you"
        LEAD_CAPTURED = "lead_captured", "New captured lead"
        LEAD_RESUBMITTED = "lead_resubmitted", "Lead submitted again"
        FOLLOW_UP_DUE = "follow_up_due", "Follow-up due"
        FOLLOW_UP_ASSIGNED = "follow_up_assigned", "Follow-up scheduled for you"
        ACTIVITY_LOGGED = "activity_logged", "Activity on your lead"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    message = models.CharField(max_length=300)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    # One notice per event and user, however often the event is delivered.
    dedupe_key = models.CharField(max_length=120)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "dedupe_key"], name="notification_once_per_event")
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notification_inbox"),
            models.Index(fields=["user"], condition=Q(read_at__isnull=True), name="notification_unread"),
        ]

    def __str__(self):
        return self.message


class OutgoingEmail(models.Model):
    """An e-mail to send, written once per event and recipient; the send job marks it sent.

    The unique key makes each message at-most-once however often its event is delivered
    or a job is retried; attempts and the last error make failures visible in admin.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=160, unique=True)
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="outgoing_email_due",
            )
        ]

    def __str__(self):
        return f"{self.subject} to {self.to}"


def import_upload_to(instance, filename):
    return f"imports/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.csv"


class ImportJob(models.Model):
    """One CSV import: the uploaded file, how its columns map to lead fields, and how far it got.

    Each batch commits its leads, its ImportRecord rows and `resume_offset` together, so a worker
    killed mid-import leaves a job that resumes from the last committed batch without creating
    any lead twice.
    """

    class Status(models.TextChoices):
        MAPPING = "mapping", "Waiting for the column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        REVERTED = "reverted", "Reverted"

    class DuplicateMode(models.TextChoices):
        SKIP = "skip", "Skip rows that match an existing lead"
        UPDATE = "update", "Update the existing lead"
        CREATE = "create", "Create a new lead anyway"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="imports")
    created_at = models.DateTimeField(default=timezone.now)
    file = models.FileField(upload_to=import_upload_to, max_length=255)
    filename = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    # What sniffing found: the text encoding, the delimiter and the header row.
    encoding = models.CharField(max_length=20, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    headers = models.JSONField(default=list, blank=True)
    # {"<column index>": "<lead field>"}; columns left out are ignored.
    mapping = models.JSONField(default=dict, blank=True)
    # Values for rows whose source / stage / owner is empty or unknown: {"source": id, ...}.
    defaults = models.JSONField(default=dict, blank=True)
    duplicate_mode = models.CharField(max_length=8, choices=DuplicateMode.choices, default=DuplicateMode.SKIP)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.MAPPING)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    # Where the next batch starts: the byte offset in the decoded stream's source and its line.
    resume_offset = models.PositiveBigIntegerField(default=0)
    resume_line = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker after every batch; a running job with an old heartbeat has died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.filename} ({self.get_status_display()})"


class ImportRecord(models.Model):
    """A lead an import created or updated, with the values it replaced, so it can be reverted."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"

    job = models.ForeignKey(  # indexed by import_record_by_job, which starts with it
        ImportJob, on_delete=models.CASCADE, related_name="records", db_index=False
    )
    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=8, choices=Action.choices)
    line = models.PositiveIntegerField()
    # For updates: {"field": old value as the timeline shows it}; restored by a revert.
    old_values = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["job", "action"], name="import_record_by_job")]

    def __str__(self):
        return f"{self.get_action_display()} lead {self.lead_id} (line {self.line})"


class ImportRowError(models.Model):
    """A row the import refused: the row as it was in the file, its line number and why."""

    job = models.ForeignKey(  # indexed by import_error_by_job, which starts with it
        ImportJob, on_delete=models.CASCADE, related_name="row_errors", db_index=False
    )
    line = models.PositiveIntegerField()
    raw = models.JSONField(default=list)
    reason = models.TextField()

    class Meta:
        ordering = ["line", "id"]
        indexes = [models.Index(fields=["job", "line"], name="import_error_by_job")]

    def __str__(self):
        return f"Line {self.line}: {self.reason}"
