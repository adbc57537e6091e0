"""manage.py seed_demo: four demo logins and about 200 leads whose timelines were written by the services."""

import random
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from unittest import mock

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from leads import follow_ups, intake, services
from leads.events import lead_changed
from leads.models import Activity, FollowUp, Lead, Source, Stage
from leads.normalization import normalize_phone

DEMO_PASSWORD = "leadboard-demo"
DEMO_USERS = [
    ("admin@example.com", "Morgan", "Ellis", Role.ADMIN),
    ("manager@example.com", "Priya", "Shah", Role.MANAGER),
    ("sales@example.com", "Sam", "Rivera", Role.SALES),
    ("sales2@example.com", "Jordan", "Okafor", Role.SALES),
]
MANAGER_EMAIL = "manager@example.com"
# Who owns the demo leads in the end; None is the unassigned pool.
OWNER_WEIGHTS = {"sales@example.com": 38, "sales2@example.com": 34, MANAGER_EMAIL: 10, None: 18}
MAX_LEADS = 3000  # the fictional phone ranges below hold about 3,500 numbers

FIRST_NAMES = [
    "Olivia", "Liam", "Amelia", "Noah", "Isla", "Oliver", "Ava", "Elijah", "Mia", "James", "Sofia",
    "Lucas", "Chloé", "Mateo", "Hannah", "Arjun", "Yuki", "Fatima", "Kwame", "Ingrid", "Tomás",
    "Zoë", "Rahul", "Aisha", "Lars", "Mei", "Diego", "Grace", "Omar", "Nina", "Felix", "Leila",
    "Hugo", "Sara", "Ethan", "Maya", "Daniel", "Emma", "Samuel", "Anya",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Garcia", "Müller", "Nguyen", "Kowalski", "Brown", "Rossi", "Tanaka",
    "O'Brien", "Patel", "Kim", "Silva", "Andersen", "Dubois", "Hughes", "Moreno", "Novak", "Walsh",
    "Fischer", "Costa", "Mensah", "Lindqvist", "Haddad", "Okonkwo", "Reyes", "Bianchi", "Clarke",
    "Sato", "Iyer", "Murphy", "Jensen", "Laurent", "Petrov", "Ahmed", "Turner",
]  # fmt: skip
# (company, e-mail domain). Domains are under .example, reserved so that no mail reaches anyone.
COMPANIES = [
    ("Northwind Traders", "northwind.example"), ("Bluefin Logistics", "bluefin.example"),
    ("Cobalt Robotics", "cobalt-robotics.example"), ("Harbor & Pine Legal", "harborpine.example"),
    ("Lumen Health", "lumenhealth.example"), ("Quarry Analytics", "quarry.example"),
    ("Saffron Foods", "saffronfoods.example"), ("Tidewater Energy", "tidewater.example"),
    ("Orchard Learning", "orchard-learning.example"), ("Redstone Construction", "redstone.example"),
    ("Vela Travel", "velatravel.example"), ("Kestrel Security", "kestrel.example"),
    ("Meridian Insurance", "meridian-ins.example"), ("Pinecrest Realty", "pinecrest.example"),
    ("Atlas Manufacturing", "atlasmfg.example"), ("Brightline Media", "brightline.example"),
    ("Granite Bank", "granitebank.example"), ("Juniper Software", "juniper-soft.example"),
    ("Oakridge Clinics", "oakridge.example"), ("Summit Outdoor", "summit-outdoor.example"),
    ("Copperleaf Design", "copperleaf.example"), ("Evergreen Solar", "evergreensolar.example"),
    ("Falcon Freight", "falconfreight.example"), ("Ivory Hotels", "ivoryhotels.example"),
]  # fmt: skip
TITLES = [
    "Head of Sales", "Operations Manager", "CTO", "Procurement Lead", "Founder", "Marketing Director",
    "Office Manager", "VP Engineering", "Finance Director", "IT Manager", "COO", "Purchasing Officer",
]  # fmt: skip
# Numbers set aside for fiction: Ofcom's drama ranges in the UK, 555-0100..0199 in North America.
PHONE_PATTERNS = [
    ("+44 20 7946 0{:03d}", 1000), ("+44 113 496 0{:03d}", 1000), ("+44 161 496 0{:03d}", 1000),
    ("+1 212 555 01{:02d}", 100), ("+1 415 555 01{:02d}", 100), ("+1 617 555 01{:02d}", 100),
    ("+1 312 555 01{:02d}", 100), ("+1 512 555 01{:02d}", 100),
]  # fmt: skip
PRIORITIES = [Lead.Priority.LOW, Lead.Priority.NORMAL, Lead.Priority.HIGH]
SOURCE_WEIGHTS = {"Website": 30, "LinkedIn": 22, "Referral": 16, "Facebook": 14, "Manual": 12, "Import": 6}
# Sources whose leads arrive through the public form, unassigned, without a person acting.
INBOUND_SOURCES = {"Website", "Facebook"}
VALUES = [0, 500, 1200, 2500, 4000, 6000, 8500, 12000, 18000, 25000, 40000, 65000]
LOST_REASONS = [
    "Went with a cheaper competitor.", "No budget this year.", "Project cancelled.",
    "Chose to build it in-house.", "Stopped replying after the demo.", "Timing: revisit next quarter.",
]  # fmt: skip
NOTES = [
    "Asked for a pricing sheet; sent it over.", "Interested in the annual plan.",
    "Decision maker is their CFO; need an intro.", "Currently using spreadsheets, keen to move.",
    "Wants a pilot for one team first.", "Security questionnaire received.",
    "Mentioned a competitor's quote; we are 10% higher.", "Budget approved for Q3.",
    "Prefers e-mail over calls.", "Follow up after their board meeting.",
]  # fmt: skip
MEETINGS = [
    "Product demo with the team.", "Discovery call on video.", "On-site visit, met the ops team.",
    "Contract walkthrough.",
]  # fmt: skip


# (due relative to the seeding moment, kind, title, outcome if already done) for each salesperson.
DEMO_FOLLOW_UPS = [
    (-timedelta(days=2), FollowUp.Kind.CALL, "Call back about the pricing sheet", ""),
    (-timedelta(hours=3), FollowUp.Kind.EMAIL, "Send the case study", ""),
    (timedelta(hours=2), FollowUp.Kind.CALL, "Check in after the demo", ""),
    (timedelta(days=2), FollowUp.Kind.MEETING, "Contract walkthrough", ""),
    (timedelta(days=6), FollowUp.Kind.TODO, "Prepare the pilot proposal", ""),
    (-timedelta(days=4), FollowUp.Kind.CALL, "Discovery call", FollowUp.Outcome.INTERESTED),
]


@dataclass
class PlannedLead:
    """One demo lead and its history, decided up front so a second run can tell it exists."""

    first_name: str
    last_name: str
    email: str
    phone: str
    company: str
    title: str
    source: Source
    owner: str | None  # a demo user's e-mail, or None for the unassigned pool
    inbound: bool  # arrived through the public form, unassigned, then handed out
    value: Decimal
    priority: str
    created_at: object
    steps: list = field(default_factory=list)  # (when, what, details), oldest first


class DemoClock:
    """Stands in for timezone.now while a lead's past is replayed through the services.

    The services stamp every change with timezone.now(). Run as is, all 200 demo leads would
    have been created and moved this very second: no time in stage on the board, one day in
    the admin's date hierarchy. Replaying each event at its planned moment keeps the services
    as the only writers while giving the demo a past.
    """

    def __init__(self):
        self.moment = None

    def __call__(self):
        return self.moment


def _ascii(text):
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("'", "")


@contextmanager
def _without_email():
    """Replaying the demo's backdated history is not news: send no e-mail about it.

    In-app notifications and the live board still hear of it, so the bell has something to show.
    """
    from leads.emails import send_lead_emails

    lead_changed.disconnect(dispatch_uid="leads.emails.send_lead_emails")
    try:
        yield
    finally:
        lead_changed.connect(send_lead_emails, dispatch_uid="leads.emails.send_lead_emails")


class Command(BaseCommand):
    help = (
        "Add demo users (password leadboard-demo) and about 200 leads with their timelines. "
        "Idempotent. Refuses to run unless DEBUG is on or --force is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Seed even though DEBUG is off.")
        parser.add_argument("--leads", type=int, default=200, help="How many demo leads (default 200).")
        parser.add_argument(
            "--seed", type=int, default=2024, help="Random seed; the same seed, the same data."
        )

    def handle(self, *args, force=False, leads=200, seed=2024, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo adds logins with a published password (leadboard-demo), so it only runs "
                "with DEBUG on. Set DEBUG=true, or pass --force if you really want demo data here."
            )
        if not 0 <= leads <= MAX_LEADS:
            raise CommandError(f"--leads must be between 0 and {MAX_LEADS}.")
        # The e-mail receiver is off until the transaction has committed (and its announcements run).
        with _without_email(), transaction.atomic():
            users, new_users = self._ensure_users()
            self._ensure_rotation(users)
            planned = self._plan(random.Random(seed), leads)
            missing = self._not_yet_seeded(planned)
            activities_before = Activity.objects.count()
            self._replay(missing, users)
            self._seed_follow_ups(users)
            new_activities = Activity.objects.count() - activities_before
        self._report(new_users, len(missing), new_activities)

    # Users ------------------------------------------------------------------------------------

    def _ensure_users(self):
        users, created = {}, 0
        for email, first_name, last_name, role in DEMO_USERS:
            user = User.objects.filter(email=email).first()
            if user is None:
                # The published demo password is set directly, past the password validators: it is
                # public by design, and this command only runs with DEBUG on or --force (see handle()).
                user = User.objects.create_user(
                    email=email, password=DEMO_PASSWORD, first_name=first_name, last_name=last_name, role=role
                )
                created += 1
            elif user.role != role:
                self.stderr.write(f"{email} already exists as {user.role}; left as it is.")
            users[email] = user
        return users, created

    def _ensure_rotation(self, users):
        """Both demo salespeople take turns with leads from the public form (/apply/)."""
        sellers = [user for user in users.values() if user.role == Role.SALES and user.is_active]
        rule = intake.assignment_rule()
        if not set(sellers) - set(rule.members.all()):
            return
        try:
            intake.update_assignment_rule(actor=users[MANAGER_EMAIL], members={*rule.members.all(), *sellers})
        except PermissionDenied:
            self.stderr.write(f"{MANAGER_EMAIL} is not a manager; the lead rotation was left as it is.")

    # Planning ---------------------------------------------------------------------------------

    def _plan(self, rng, count):
        stages = list(Stage.objects.filter(archived=False).order_by("position", "id"))
        sources = {source.name: source for source in Source.objects.filter(archived=False)}
        if not sources or not any(stage.kind == Stage.Kind.OPEN for stage in stages):
            raise CommandError("Seeding needs at least one open stage and one source; run migrate first.")
        phones = self._phone_numbers(rng)
        emails = set()
        return [self._plan_lead(rng, stages, sources, phones, emails) for _ in range(count)]

    def _plan_lead(self, rng, stages, sources, phones, emails):
        first_name, last_name = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company, domain = rng.choice(COMPANIES)
        contact = rng.random()
        email = self._unique_email(first_name, last_name, domain, emails) if contact >= 0.12 else ""
        phone = next(phones) if contact < 0.12 or contact >= 0.3 else ""
        names = [name for name in SOURCE_WEIGHTS if name in sources] or sorted(sources)
        source_name = rng.choices(names, weights=[SOURCE_WEIGHTS.get(name, 10) for name in names])[0]
        owner = rng.choices(list(OWNER_WEIGHTS), weights=list(OWNER_WEIGHTS.values()))[0]
        days_ago = rng.triangular(0.2, 120, 10)
        lead = PlannedLead(
            first_name=first_name, last_name=last_name, email=email, phone=phone, company=company,
            title=rng.choice(TITLES), source=sources[source_name], owner=owner,
            inbound=source_name in INBOUND_SOURCES and rng.random() < 0.6,
            value=Decimal(rng.choice(VALUES)), priority=rng.choices(PRIORITIES, [25, 55, 20])[0],
            created_at=timezone.now() - timedelta(days=days_ago),
        )  # fmt: skip
        self._plan_history(rng, lead, stages)
        return lead

    @staticmethod
    def _unique_email(first_name, last_name, domain, taken):
        base = f"{_ascii(first_name)}.{_ascii(last_name)}"
        email, n = f"{base}@{domain}", 1
        while email in taken:
            n += 1
            email = f"{base}{n}@{domain}"
        taken.add(email)
        return email

    @staticmethod
    def _phone_numbers(rng):
        """Fictional numbers in random order, each checked against what the services accept."""
        candidates = [pattern.format(i) for pattern, size in PHONE_PATTERNS for i in range(size)]
        rng.shuffle(candidates)
        for number in candidates:
            try:
                normalize_phone(number)
            except ValidationError:
                continue
            yield number

    def _plan_history(self, rng, lead, stages):
        """Calls, notes, meetings and moves towards a final stage, spread between creation and now."""
        events = [("assign", lead.owner)] if lead.inbound and lead.owner else []
        path = self._pipeline_path(rng, stages)
        if path and rng.random() < 0.7:
            outcome = rng.choice(Activity.CallOutcome.values)
            events.append(("call", outcome, rng.randint(2, 25) if outcome == "connected" else None))
        for stage in path:
            if stage.kind == Stage.Kind.WON or (stage is path[-1] and rng.random() < 0.3):
                events.append(("meeting", rng.choice(MEETINGS), rng.choice([30, 45, 60])))
            events.append(("move", stage, rng.choice(LOST_REASONS) if stage.is_lost else ""))
            if rng.random() < 0.45:
                events.append(("note", rng.choice(NOTES)))
        span = (timezone.now() - timedelta(minutes=30) - lead.created_at).total_seconds()
        offsets = sorted(rng.uniform(0.02, 1.0) * span for _ in events)
        lead.steps = [
            (lead.created_at + timedelta(seconds=offset), *event) for offset, event in zip(offsets, events)
        ]

    @staticmethod
    def _pipeline_path(rng, stages):
        """The stages a lead moves through after the first one, ending at a randomly chosen stage."""
        open_stages = [stage for stage in stages if stage.kind == Stage.Kind.OPEN]
        closing = [stage for stage in stages if stage.kind != Stage.Kind.OPEN]
        # Most leads are still open; a few more sit early in the pipeline than late.
        weights = [22, 18, 12, 20][: len(open_stages)] + [15] * (len(open_stages) - 4) + [14] * len(closing)
        target = rng.choices(open_stages + closing, weights=weights)[0]
        on_the_way = open_stages[1 : open_stages.index(target)] if target in open_stages else open_stages[1:]
        path = [stage for stage in on_the_way if rng.random() < 0.6]
        if target != open_stages[0]:
            path.append(target)
        return path

    def _not_yet_seeded(self, planned):
        """The planned leads whose e-mail or phone no lead (live or deleted) has yet."""
        emails = [lead.email for lead in planned if lead.email]
        phones = [normalize_phone(lead.phone) for lead in planned if lead.phone]
        taken = set()
        for email, phone in Lead.objects.filter(Q(email__in=emails) | Q(phone__in=phones)).values_list(
            "email", "phone"
        ):
            taken.update(value for value in (email, phone) if value)
        return [
            lead
            for lead in planned
            if lead.email not in taken and (not lead.phone or normalize_phone(lead.phone) not in taken)
        ]

    # Replaying the plan through the services --------------------------------------------------

    def _replay(self, planned, users):
        clock = DemoClock()
        with mock.patch.object(timezone, "now", clock):
            for plan in planned:
                try:
                    self._replay_lead(plan, users, clock)
                except (ValidationError, PermissionDenied) as exc:
                    reason = " ".join(getattr(exc, "messages", [str(exc)]))
                    raise CommandError(
                        f"Seeding stopped at {plan.first_name} {plan.last_name}: {reason} Nothing was saved."
                    ) from exc

    def _replay_lead(self, plan, users, clock):
        manager = users[MANAGER_EMAIL]
        owner = users[plan.owner] if plan.owner and not plan.inbound else None
        creator = None if plan.inbound else (owner if owner and owner.role == Role.SALES else manager)
        clock.moment = plan.created_at
        lead = services.create_lead(
            actor=creator, first_name=plan.first_name, last_name=plan.last_name, email=plan.email,
            phone=plan.phone, company=plan.company, title=plan.title, source=plan.source, owner=owner,
            value=plan.value, priority=plan.priority,
        )  # fmt: skip
        for when, what, *details in plan.steps:
            clock.moment = when
            # Whoever works the lead acts on it; the manager handles the unassigned pool.
            actor = lead.owner or manager
            lead = self._replay_step(lead, actor, manager, users, what, details)

    @staticmethod
    def _replay_step(lead, actor, manager, users, what, details):
        if what == "assign":
            return services.reassign_lead(lead=lead, owner=users[details[0]], actor=manager)
        if what == "move":
            stage, lost_reason = details
            return services.move_lead(lead=lead, stage=stage, actor=actor, lost_reason=lost_reason)
        if what == "call":
            outcome, minutes = details
            services.log_activity(
                lead=lead, actor=actor, kind=Activity.Kind.CALL, outcome=outcome, duration_minutes=minutes
            )
        elif what == "meeting":
            body, minutes = details
            services.log_activity(
                lead=lead, actor=actor, kind=Activity.Kind.MEETING, body=body, duration_minutes=minutes
            )
        elif what == "note":
            services.log_activity(lead=lead, actor=actor, kind=Activity.Kind.NOTE, body=details[0])
        return lead

    # Follow-ups -------------------------------------------------------------------------------

    def _seed_follow_ups(self, users):
        """A few follow-ups per salesperson: overdue, due today, upcoming and recently done.

        Each has a fixed idempotency key, so a second run finds them and adds nothing.
        """
        now = timezone.now()
        for email in ("sales@example.com", "sales2@example.com"):
            person = users[email]
            if not person.is_active or person.role != Role.SALES:
                continue
            leads = list(
                Lead.objects.live()
                .filter(owner=person, stage__kind=Stage.Kind.OPEN)
                .select_related("stage", "owner")
                .order_by("pk")[: len(DEMO_FOLLOW_UPS)]
            )
            for n, (lead, (due_in, kind, title, outcome)) in enumerate(zip(leads, DEMO_FOLLOW_UPS)):
                follow_up = follow_ups.schedule_follow_up(
                    lead=lead, actor=person, kind=kind, title=title, due_at=now + due_in,
                    idempotency_key=f"demo-follow-up-{person.email}-{n}",
                )  # fmt: skip
                if follow_up.just_created and outcome:
                    follow_ups.complete_follow_up(
                        follow_up=follow_up, actor=person, outcome=outcome, duration_minutes=10,
                        notes="Went through pricing; they will decide next week.",
                    )  # fmt: skip

    # Output -----------------------------------------------------------------------------------

    def _report(self, new_users, new_leads, new_activities):
        if new_users or new_leads:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Added {new_users} demo users and {new_leads} leads with {new_activities} activities."
                )
            )
        else:
            self.stdout.write("Demo data is already there; nothing was changed.")
        self.stdout.write(f"\nDemo logins (password: {DEMO_PASSWORD}):")
        for email, first_name, last_name, role in DEMO_USERS:
            self.stdout.write(f"  {email:<22} {role.label:<8} {first_name} {last_name}")
        self.stdout.write("The board is at /board/, Django admin at /admin/ (admin and manager).")
