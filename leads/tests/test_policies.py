"""The policy matrix: each role x each action x each kind of lead x each LEAD_SHARING setting."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import timezone

from accounts.roles import Role
from leads import policies
from leads.models import Lead
from leads.selectors import get_visible_lead, visible_leads
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

SHARINGS = ("private", "read", "write")

# Each cell is the answer under LEAD_SHARING = (private, read, write).
ALL = (True, True, True)
NONE = (False, False, False)
SHARED = (False, True, True)  # only when other people's leads are shared (read or write)
WRITE = (False, False, True)  # only when sharing is write

ACTIONS = ("can_view", "can_edit", "can_reassign", "can_claim", "can_delete", "can_restore")

# Lead kinds, relative to the user asking: "own" is theirs, "others" belongs to another
# salesperson, "unassigned" is in the pool; deleted_* are the same, soft-deleted.
# can_delete / can_restore answer who may, whatever the lead's state: the services refuse
# deleting a deleted lead (or restoring a live one) with their own message.
MATRIX = {
    # (role, lead kind):                can_view  can_edit  can_reassign can_claim can_delete can_restore
    ("admin", "own"):                   (ALL,     ALL,      ALL,         NONE,     ALL,       ALL),
    ("admin", "others"):                (ALL,     ALL,      ALL,         NONE,     ALL,       ALL),
    ("admin", "unassigned"):            (ALL,     ALL,      ALL,         ALL,      ALL,       ALL),
    ("admin", "deleted_own"):           (ALL,     NONE,     NONE,        NONE,     ALL,       ALL),
    ("admin", "deleted_others"):        (ALL,     NONE,     NONE,        NONE,     ALL,       ALL),
    ("admin", "deleted_unassigned"):    (ALL,     NONE,     NONE,        NONE,     ALL,       ALL),
    ("manager", "own"):                 (ALL,     ALL,      ALL,         NONE,     ALL,       ALL),
    ("manager", "others"):              (ALL,     ALL,      ALL,         NONE,     ALL,       ALL),
    ("manager", "unassigned"):          (ALL,     ALL,      ALL,         ALL,      ALL,       ALL),
    ("manager", "deleted_own"):         (ALL,     NONE,     NONE,        NONE,     ALL,       ALL),
    ("manager", "deleted_others"):      (ALL,     NONE,     NONE,        NONE,     ALL,       ALL),
    ("manager", "deleted_unassigned"):  (ALL,     NONE,     NONE,        NONE,     ALL,       ALL),
    ("sales", "own"):                   (ALL,     ALL,      NONE,        NONE,     NONE,      NONE),
    ("sales", "others"):                (SHARED,  WRITE,    NONE,        NONE,     NONE,      NONE),
    # Under "private" sales still see the unassigned pool, so they can claim from it.
    ("sales", "unassigned"):            (ALL,     WRITE,    NONE,        ALL,      NONE,      NONE),
    ("sales", "deleted_own"):           (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("sales", "deleted_others"):        (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("sales", "deleted_unassigned"):    (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    # A deactivated account can do nothing, whatever its role.
    ("inactive_sales", "own"):          (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_sales", "others"):       (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_sales", "unassigned"):   (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_sales", "deleted_own"):  (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_manager", "own"):        (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_manager", "others"):     (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_manager", "unassigned"): (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("inactive_manager", "deleted_own"): (NONE,   NONE,     NONE,        NONE,     NONE,      NONE),
    # Anonymous visitors own nothing, so they have no "own" rows.
    ("anonymous", "others"):            (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("anonymous", "unassigned"):        (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
    ("anonymous", "deleted_others"):    (NONE,    NONE,     NONE,        NONE,     NONE,      NONE),
}  # fmt: skip

ROLES = sorted({role for role, _ in MATRIX})
LEAD_KINDS = ("own", "others", "unassigned", "deleted_own", "deleted_others", "deleted_unassigned")


def make_user(role):
    """A user for a row of the matrix; AnonymousUser for "anonymous"."""
    if role == "anonymous":
        return AnonymousUser()
    inactive = role.startswith("inactive_")
    return UserFactory(role=Role(role.removeprefix("inactive_")), is_active=not inactive)


def make_lead(kind, *, user, other):
    owner = {"own": user, "others": other, "unassigned": None}[kind.removeprefix("deleted_")]
    return LeadFactory(owner=owner, deleted_at=timezone.now() if kind.startswith("deleted_") else None)


def matrix_cells():
    for (role, kind), answers in MATRIX.items():
        for action, by_sharing in zip(ACTIONS, answers):
            for sharing, expected in zip(SHARINGS, by_sharing):
                yield pytest.param(
                    role, kind, action, sharing, expected, id=f"{role}-{kind}-{action}-{sharing}"
                )


def test_the_matrix_covers_every_action_for_every_row():
    assert all(len(answers) == len(ACTIONS) for answers in MATRIX.values())
    assert all(len(cell) == len(SHARINGS) for answers in MATRIX.values() for cell in answers)
    for role in ROLES:
        kinds = {kind for r, kind in MATRIX if r == role}
        assert {"others", "unassigned"} <= kinds, role


@pytest.mark.parametrize("role,kind,action,sharing,expected", list(matrix_cells()))
def test_policy_matrix(settings, role, kind, action, sharing, expected):
    settings.LEAD_SHARING = sharing
    user = make_user(role)
    lead = make_lead(kind, user=user, other=UserFactory(role=Role.SALES))
    assert getattr(policies, action)(user, lead) is expected


@pytest.mark.parametrize("kind", LEAD_KINDS)
@pytest.mark.parametrize("action", ACTIONS)
def test_no_actor_may_do_nothing_to_an_existing_lead(kind, action):
    """actor=None (public form, system jobs) creates leads but never acts on one through a policy."""
    lead = make_lead(kind, user=None, other=UserFactory(role=Role.SALES))
    assert getattr(policies, action)(None, lead) is False


@pytest.mark.parametrize(
    "role,expected",
    [
        ("admin", True),
        ("manager", True),
        ("sales", True),
        ("inactive_sales", False),
        ("anonymous", False),
        ("no actor", True),  # the public capture form and system jobs
    ],
)
def test_who_may_create_leads(role, expected):
    user = None if role == "no actor" else make_user(role)
    assert policies.can_create(user) is expected


@pytest.mark.parametrize(
    "role,owner,expected",
    [
        ("admin", "other", True),
        ("manager", "other", True),
        ("manager", "nobody", True),
        ("sales", "self", True),
        ("sales", "nobody", True),
        ("sales", "other", False),
    ],
)
def test_who_may_choose_the_owner_of_a_new_lead(role, owner, expected):
    user = make_user(role)
    chosen = {"self": user, "nobody": None, "other": UserFactory(role=Role.SALES)}[owner]
    assert policies.can_assign_on_create(user, chosen) is expected


# --- the list twin: visible_leads_q / visible_leads never disagree with can_view -------------


@pytest.fixture
def every_kind_of_lead(db):
    """Two salespeople and a manager, and one lead of each kind for each owner."""
    sales, other_sales, manager = (UserFactory(role=role) for role in (Role.SALES, Role.SALES, Role.MANAGER))
    for owner in (sales, other_sales, manager, None):
        LeadFactory(owner=owner)
        LeadFactory(owner=owner, deleted_at=timezone.now())
    return {"sales": sales, "manager": manager}


def users_to_check(every_kind_of_lead):
    return {
        **every_kind_of_lead,
        "admin": UserFactory(role=Role.ADMIN),
        "inactive_sales": UserFactory(role=Role.SALES, is_active=False),
        "anonymous": AnonymousUser(),
    }


@pytest.mark.parametrize("sharing", SHARINGS)
def test_visible_leads_q_agrees_with_can_view_for_every_lead(settings, every_kind_of_lead, sharing):
    settings.LEAD_SHARING = sharing
    for name, user in users_to_check(every_kind_of_lead).items():
        listed = set(Lead.objects.filter(policies.visible_leads_q(user)).values_list("pk", flat=True))
        viewable = {lead.pk for lead in Lead.objects.all() if policies.can_view(user, lead)}
        assert listed == viewable, name


@pytest.mark.parametrize("sharing", SHARINGS)
def test_visible_leads_lists_exactly_the_live_leads_can_view_allows(settings, every_kind_of_lead, sharing):
    settings.LEAD_SHARING = sharing
    for name, user in users_to_check(every_kind_of_lead).items():
        listed = set(visible_leads(user).values_list("pk", flat=True))
        viewable = {lead.pk for lead in Lead.objects.live() if policies.can_view(user, lead)}
        assert listed == viewable, name


@pytest.mark.parametrize("sharing", SHARINGS)
def test_a_lead_the_user_may_not_see_is_not_found(settings, sharing):
    settings.LEAD_SHARING = sharing
    sales = UserFactory(role=Role.SALES)
    others = LeadFactory(owner=UserFactory(role=Role.SALES))
    deleted = LeadFactory(owner=sales, deleted_at=timezone.now())

    with pytest.raises(Http404):
        get_visible_lead(sales, deleted.pk)
    if sharing == "private":
        with pytest.raises(Http404):
            get_visible_lead(sales, others.pk)
    else:
        assert get_visible_lead(sales, str(others.pk)) == others
    for junk in ("abc", None, 10**30):
        with pytest.raises(Http404):
            get_visible_lead(sales, junk)
