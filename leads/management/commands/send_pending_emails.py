"""manage.py send_pending_emails: deliver every e-mail that is due (from cron, on any number of machines)."""

from django.core.management.base import BaseCommand

from leads.tasks import deliver_due_emails


class Command(BaseCommand):
    help = (
        "Send the e-mails that are due: pending ones whose retry time has come, and ones left "
        "'sending' for over 10 minutes by a worker that stopped. Each is claimed before it is sent, "
        "so several machines may run this at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="Send at most this many in this run.")

    def handle(self, *args, limit=None, **options):
        outcomes = deliver_due_emails(limit=limit)
        self.stdout.write(
            f"Sent {outcomes['sent']}, to retry later {outcomes['retry']}, "
            f"failed for good {outcomes['failed']}, taken by another worker {outcomes['skipped']}, "
            f"errors {outcomes['error']}."
        )
