"""manage.py check_integrity: report leads, timelines, files and counters that disagree; exit 1 if any do."""

import json

from django.core.management.base import BaseCommand, CommandError

from leads.integrity import KINDS, run_checks


class Command(BaseCommand):
    help = (
        "Check that every live lead's stage and owner match its timeline, that no two live leads "
        "share an e-mail or phone, that attachment rows and stored files match, that activities, "
        "attachments and follow-ups point at existing leads, and that lead counters are exact. "
        "Reads only. Exits 1 listing each kind of problem (a few examples each), 0 when clean."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--examples", type=int, default=10, help="At most this many examples per kind of problem (10)."
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")

    def handle(self, *args, examples, as_json, **options):
        if examples < 1:
            raise CommandError("--examples must be at least 1.")
        report = run_checks(examples=examples)
        if as_json:
            self.stdout.write(_dumps(report.as_dict()))
        else:
            self._write_text(report)
        if not report.ok:
            raise SystemExit(1)

    def _write_text(self, report):
        checked = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in report.checked.items())
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"Integrity OK: no problems in {checked}."))
            return
        found = [problem for problem in report.problems.values() if problem.count]
        self.stderr.write(f"Integrity check found {sum(p.count for p in found)} problem(s) in {checked}:")
        for problem in found:
            self.stderr.write(f"\n{problem.kind}: {problem.count} — {KINDS[problem.kind]}")
            for example in problem.examples:
                self.stderr.write(f"  - {example}")
            if problem.count > len(problem.examples):
                self.stderr.write(f"  … and {problem.count - len(problem.examples)} more")


def _dumps(data):
    return json.dumps(data, indent=2, default=str)
