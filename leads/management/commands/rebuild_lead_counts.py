"""manage.py rebuild_lead_counts: recount the lead counters (leads_leadcount) from leads_lead."""

from django.core.management.base import BaseCommand

from leads.counts import counter_drift, rebuild_lead_counts, uses_counters


class Command(BaseCommand):
    help = (
        "Recount the per-(stage, source, owner) lead counters from the leads themselves. Needed only "
        "after writes the triggers did not see (a load with session_replication_role = replica, a "
        "restore with triggers disabled). With --check, only report the counters that drifted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Report drift and exit 1 if any; change nothing."
        )

    def handle(self, *args, check, **options):
        if not uses_counters():
            self.stdout.write("This database counts leads directly (no counter table to rebuild).")
            return
        drift = counter_drift()
        for row in drift[:20]:
            self.stdout.write(
                "stage {stage_id} source {source_id} owner {owner_id}: counted {counted} "
                "(value {counted_value}), actually {actual} (value {actual_value})".format(**row)
            )
        if check:
            if drift:
                self.stderr.write(f"{len(drift)} counter(s) drifted: run rebuild_lead_counts.")
                raise SystemExit(1)
            self.stdout.write("Lead counters are exact.")
            return
        rows = rebuild_lead_counts()
        self.stdout.write(f"Rebuilt {rows} counter rows ({len(drift)} had drifted).")
