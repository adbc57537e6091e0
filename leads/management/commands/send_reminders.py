"""manage.py send_reminders: the morning follow-up digest and the before-due reminders (cron or worker)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads import reminders


class Command(BaseCommand):
    help = (
        "E-mail each user their overdue and today's follow-ups once a day (from REMINDER_DIGEST_HOUR, "
        "local time), and remind the assignee REMINDER_MINUTES_BEFORE minutes before each follow-up "
        "is due (e-mail and notification). Run it every few minutes; running it again, or on several "
        "machines at once, sends nothing twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            help="Act as if it were this time (ISO 8601, e.g. 2026-03-02T07:30; local time when no offset).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print what would be sent; send nothing.")

    def handle(self, *args, now=None, dry_run=False, **options):
        at = self._parse_now(now) if now else timezone.now()
        sent = reminders.send_digests(now=at, dry_run=dry_run) + reminders.send_due_reminders(
            now=at, dry_run=dry_run
        )
        verb = "Would send" if dry_run else "Sent"
        for item in sent:
            self.stdout.write(f"{verb} {item.what} to {item.to}: {item.summary}")
        digests = sum(item.what == "digest" for item in sent)
        self.stdout.write(f"{verb} {digests} digest(s) and {len(sent) - digests} reminder(s).")
        if not dry_run:
            self._deliver_pending()

    def _parse_now(self, value):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise CommandError(
                f"--now must be an ISO 8601 date and time, like 2026-03-02T07:30, not {value!r}."
            )
        return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed

    def _deliver_pending(self):
        """Send what is due now, so one cron line is enough where no worker runs."""
        try:
            from leads.tasks import deliver_due_emails
        except ImportError:
            return
        outcomes = deliver_due_emails()
        if sum(outcomes.values()):
            self.stdout.write(
                f"Delivered {outcomes['sent']} pending e-mail(s); {outcomes['retry']} to retry later."
            )
