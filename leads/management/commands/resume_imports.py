"""manage.py resume_imports: re-queue CSV imports whose worker died (from cron, or after a deploy)."""

from django.core.management.base import BaseCommand
from django.db.models import Q
from django.utils import timezone

from leads.imports import STALE_AFTER
from leads.models import ImportJob
from leads.tasks import run_import_task


class Command(BaseCommand):
    help = (
        "Re-queue imports left 'running' by a worker that stopped (no heartbeat for 5 minutes) and, "
        "with --failed, imports that failed. Each continues after its last committed batch, so no "
        "lead is created twice; a worker that is still alive keeps its job (the claim is conditional)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="Also retry imports that failed.")

    def handle(self, *args, failed=False, **options):
        stale = Q(status=ImportJob.Status.RUNNING) & (
            Q(heartbeat_at__lt=timezone.now() - STALE_AFTER) | Q(heartbeat_at__isnull=True)
        )
        if failed:
            stale |= Q(status=ImportJob.Status.FAILED)
        job_ids = list(ImportJob.objects.filter(stale).values_list("pk", flat=True))
        for job_id in job_ids:
            run_import_task.enqueue(job_id)
        self.stdout.write(f"Re-queued {len(job_ids)} import(s).")
