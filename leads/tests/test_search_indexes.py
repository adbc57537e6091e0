"""Search at scale: migration 0006's trigram indexes (PostgreSQL) and the same results on both databases."""

from importlib import import_module
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from leads.bench_search import search_queries
from leads.filters import search_leads
from leads.models import Lead
from leads.tests.api.contract import client_for
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

trigram_migration = import_module("leads.migrations.0006_search_trigram_indexes")
TRIGRAM_INDEXES = trigram_migration.TRIGRAM_INDEXES

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm is PostgreSQL's")
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite fallback")


# --- the people ---------------------------------------------------------------------------------

# key: (first name, last name, e-mail, phone, company). Accents, %, _, \ and every case.
PEOPLE = {
    "ada": ("Ada", "Lovelace", "ada@analytical.example", "+12125550123", "Analytical Engines"),
    "grace": ("Grace", "Hopper", "grace@navy.example", "+13125559876", "Cobol Corp"),
    "alan": ("Alan", "Turing", "alan@bletchley.example", "", "Bletchley Park"),
    "jose_accent": ("José", "Álvarez", "jose.alvarez@correo.example", "+34911234567", "Café Olé"),
    "jose_plain": ("Jose", "Alvarez", "jose@plain.example", "", "Alvarez Hermanos"),
    "zoe": ("Zoë", "Çelik", "zoe@celik.example", "", "ÇELIK Textiles"),
    "soren": ("Søren", "Østergaard", "soren@ostergaard.example", "+4532123456", "Østergaard ApS"),
    "muller": ("Jürgen", "MÜLLER", "juergen@mueller.example", "", "Müller GmbH"),
    "gross": ("Hans", "Groß", "hans@bau.example", "", "Hauptstraße Bau"),
    "percent": ("Pat", "Percent", "pat@percent.example", "", "100% Organic"),
    "hundred": ("Hank", "Dred", "hank@dred.example", "", "1000 Organics"),
    "underscore": ("Sam", "Snake", "under_score@snake.example", "", "Snake_Case Ltd"),
    "underscore_trap": ("Sid", "Snake", "underxscore@snake.example", "", "SnakeXCase Ltd"),
    "backslash": ("Bo", "Slash", "bo@slash.example", "", "Back\\Slash Inc"),
    "backslash_trap": ("Bea", "Slash", "bea@slash.example", "", "Backslash Inc"),
    "mcdonald": ("Ronald", "McDonald", "ronald@mcd.example", "", "McDonald's"),
    "macdonald": ("Ann", "MacDonald", "ann@macdonald.example", "", "IBM"),
    "iphone": ("Ivy", "Phone", "ivy@iphone-repairs.example", "+14155550199", "iPhone Repairs"),
    "li": ("Wei", "Li", "wei.li@dragon.example", "", "Dragon Trading"),
    "lisa": ("Lisa", "Wong", "lisa.wong@harbor.example", "", "Harbor Freight"),
    "eli": ("Eli", "Stone", "eli@stone.example", "", "Stone & Co"),
    "linda": ("Linda", "Parker", "lp@parker.example", "", "Lime Systems"),
    "obrien": ("Siobhán", "O'Brien", "siobhan@obrien.example", "+353861234567", "O'Brien & Sons"),
    "devries": ("Daan", "de Vries", "daan@devries.example", "", "DeVries Holland"),
    "london": ("Oliver", "Twist", "oliver@twist.example", "+442079460958", ""),
    "mary": ("MARY", "JONES", "mary@globex.example", "", "GLOBEX"),
    "no_email": ("Nora", "Quinn", "", "+16175550142", "Quinn Quarries"),
    "blank": ("Bart", "", "bart@blank.example", "", ""),
}
# Soft-deleted: it matches many of the terms below, and search must never list it.
DELETED = ("José", "Deleted", "jose.deleted@gone.example", "+12125550100", "Café Olé")

# term: the keys of PEOPLE it finds, written from the definitions above.
EXPECTED = {
    "josé": {"jose_accent"},
    "JOSÉ": {"jose_accent"},
    "jose": {"jose_accent", "jose_plain"},  # jose.alvarez@ has no accent
    "álvarez": {"jose_accent"},
    "ÁLVAREZ": {"jose_accent"},
    "alvarez": {"jose_accent", "jose_plain"},
    "café": {"jose_accent"},
    "zoë": {"zoe"},
    "ZOË": {"zoe"},
    "çelik": {"zoe"},
    "Çelik TEXTILES": {"zoe"},
    "celik": {"zoe"},  # the e-mail
    "østergaard": {"soren"},
    "ØSTERGAARD": {"soren"},
    "müller": {"muller"},
    "MÜLLER gmbh": {"muller"},
    "straße": {"gross"},
    "STRAßE": {"gross"},
    "strasse": set(),  # no folding of ß to ss
    "groß": {"gross"},
    "100%": {"percent"},  # % is a character, not a wildcard: "1000 Organics" does not match
    "100": {"percent", "hundred"},
    "%": set(),
    "%%%": set(),
    "snake_case": {"underscore"},  # _ is a character: "SnakeXCase" does not match
    "under_score": {"underscore"},
    "_": set(),
    "k\\s": {"backslash"},
    "\\": set(),
    "mcdonald": {"mcdonald"},
    "MACDONALD": {"macdonald"},
    "donald": {"mcdonald", "macdonald"},
    "ibm": {"macdonald"},
    "IPHONE": {"iphone"},
    "o'brien": {"obrien"},
    "siobhán": {"obrien"},
    "devries": {"devries"},
    "de vries": {"devries"},
    "DE": {"devries"},  # two letters alone: the start of a field ("de Vries", "DeVries …", daan@ no)
    "stone & co": {"eli"},  # short words beside a longer one match anywhere, as before
    "o'brien & sons": {"obrien"},
    "& co": set(),  # only short words: the start of a field, and none starts with "&"
    "globex": {"mary"},
    "Mary jones": {"mary"},
    "sid snake": {"underscore_trap"},
    "quarries": {"no_email"},
    # Only words of one or two characters: the start of a first or last name, e-mail or company.
    "li": {"li", "lisa", "linda"},  # Li, Lisa, Linda, Lime Systems; not Eli, not Oliver
    "LI": {"li", "lisa", "linda"},
    "l": {"ada", "li", "lisa", "linda"},  # Lovelace, Li, Lisa, lp@, Linda
    "j smith": set(),
    "j müller": {"muller"},  # "j" beside a longer word: anywhere (Jürgen, juergen@)
    "ld": set(),  # not the start of any field (McDonald and Ronald hold it)
    "ø": {"soren"},
    # Phones: fragments of 3+ digits, however typed, and whole numbers.
    "555": {"ada", "grace", "iphone", "no_email"},
    "(212) 555-0123": {"ada"},
    "212.555.0123": {"ada"},
    "+44 20 7946 0958": {"london"},
    "7946": {"london"},
    "ada 0123": {"ada"},
    "ada 9876": set(),
    "12": set(),  # two digits are not a phone fragment, and no field starts with them
    "nobody-at-all": set(),
}


@pytest.fixture
def as_manager(manager):
    return client_for(manager)


@pytest.fixture
def people(manager):
    leads = {}
    for key, (first, last, email, phone, company) in PEOPLE.items():
        leads[key] = LeadFactory(
            first_name=first, last_name=last, email=email, phone=phone, company=company, owner=manager
        ).pk
    first, last, email, phone, company = DELETED
    LeadFactory(
        first_name=first, last_name=last, email=email, phone=phone, company=company, owner=manager,
        deleted_at=timezone.now(),
    )  # fmt: skip
    return leads


@pytest.mark.parametrize("term", list(EXPECTED))
def test_search_finds_the_same_leads_on_every_database(people, term):
    found = set(search_leads(Lead.objects.live(), term).values_list("pk", flat=True))
    assert found == {people[key] for key in EXPECTED[term]}


def test_the_api_and_the_board_search_as_search_leads_does(people, as_manager, manager_client):
    api = as_manager.get("/api/leads/", {"query": "ZOË"}).json()
    assert [row["id"] for row in api["leads"]] == [people["zoe"]]
    assert api["count"] == 1

    board = manager_client.get("/board/", {"query": "100%"})
    shown = {lead.pk for column in board.context["columns"] for lead in column.leads}
    assert shown == {people["percent"]}


# --- the indexes ------------------------------------------------------------------------------


def index_definitions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'leads_lead'")
        return dict(cursor.fetchall())


@postgres_only
def test_the_migration_built_a_trigram_index_on_every_searched_column():
    definitions = index_definitions()
    for name, column in TRIGRAM_INDEXES.items():
        assert name in definitions, f"{name} is missing"
        assert f"USING gin ({column} gin_trgm_ops)" in definitions[name]
        # Not partial: the admin searches deleted leads too.
        assert "WHERE" not in definitions[name]
    assert set(TRIGRAM_INDEXES.values()) == {"first_name", "last_name", "email", "company", "phone"}


@postgres_only
def test_reversing_the_migration_drops_the_indexes_and_applying_it_again_rebuilds_them():
    # Inside the test's transaction the functions use plain CREATE/DROP INDEX, rolled back after.
    with connection.schema_editor() as editor:
        trigram_migration.drop_trigram_indexes(None, editor)
    assert not set(TRIGRAM_INDEXES) & set(index_definitions())

    with connection.schema_editor() as editor:
        trigram_migration.create_trigram_indexes(None, editor)
        trigram_migration.create_trigram_indexes(None, editor)  # and again: IF NOT EXISTS
    assert set(TRIGRAM_INDEXES) <= set(index_definitions())


@sqlite_only
def test_sqlite_has_no_trigram_index_and_the_migration_functions_do_nothing_there(people):
    def index_names():
        with connection.cursor() as cursor:
            return set(connection.introspection.get_constraints(cursor, "leads_lead"))

    before = index_names()
    assert not {name for name in before if name.endswith("_trgm")}
    # SQLite's schema editor cannot open inside the test's transaction; the functions only read
    # editor.connection, to check the vendor.
    editor = SimpleNamespace(connection=connection)
    trigram_migration.create_trigram_indexes(None, editor)
    trigram_migration.drop_trigram_indexes(None, editor)
    assert index_names() == before
    assert set(search_leads(Lead.objects.live(), "ada").values_list("pk", flat=True)) == {people["ada"]}


def explain(sql, params, *settings):
    with connection.cursor() as cursor:
        # A tiny table is cheaper to scan than to look up: make the planner show what it would
        # do with a million rows. SET LOCAL ends with the test's transaction.
        for setting in ("enable_seqscan", *settings):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


TEXT_INDEXES = ["lead_first_name_trgm", "lead_last_name_trgm", "lead_email_trgm", "lead_company_trgm"]


@postgres_only
@pytest.mark.parametrize(
    ("term", "used", "unused"),
    [
        ("mueller", TEXT_INDEXES, ["lead_phone_trgm"]),  # a word: the text columns, not the phone
        ("555-0123", [*TEXT_INDEXES, "lead_phone_trgm"], []),  # a phone fragment: the phone too
        ("li", TEXT_INDEXES, ["lead_phone_trgm"]),  # two letters: a prefix, still indexed
    ],
)
def test_a_search_reads_the_trigram_indexes(people, term, used, unused):
    # On a tiny table reading the partial index lead_list_order (deleted_at IS NULL) and filtering
    # is cheapest, so this explains the search over every lead, deleted too (the admin's "All"),
    # with scans and btree walks ruled out: what is left to serve the condition are the trigram
    # indexes. At a million leads the live search's COUNT reads them as they are (README,
    # "Search"); its page may walk lead_list_order when many leads match (the LIMIT stops early).
    everyone = Lead.objects.select_related("stage", "source", "owner")
    for plan in (explain(*query, "enable_indexscan") for query in search_queries(term, everyone)):
        for name in used:
            assert f"Bitmap Index Scan on {name}" in plan, plan
        for name in unused:
            assert name not in plan, plan


@postgres_only
def test_the_sql_is_ilike_on_the_bare_columns_with_the_term_escaped():
    sql, params = search_queries("50%_off\\")[1]
    assert 'UPPER("leads_lead"' not in sql
    assert '"leads_lead"."first_name" ILIKE %s' in sql
    assert "%50\\%\\_off\\\\%" in params


# --- query counts -------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["ada", "li", "555", "jose alvarez café 100% o'brien snake_case k\\s"])
def test_a_search_on_the_api_list_runs_a_fixed_number_of_queries(
    people, as_manager, django_assert_max_num_queries, term
):
    # The exact COUNT, the page's ids and its rows with their joins (LeadPagination's deferred
    # join); a search adds no query, whatever its words or matches.
    with django_assert_max_num_queries(3):
        response = as_manager.get("/api/leads/", {"query": term})
    assert response.status_code == 200


@pytest.mark.parametrize("term", ["ada", "li", "555", "jose alvarez café 100% o'brien snake_case k\\s"])
def test_a_search_on_the_board_runs_a_fixed_number_of_queries(
    people, manager_client, django_assert_max_num_queries, term
):
    # As test_board's bound for an unsearched board: session + user, stages, one aggregate,
    # one page per column, the filter bar's and quick-add's choices, the notification bell.
    with django_assert_max_num_queries(17):
        response = manager_client.get("/board/", {"query": term})
    assert response.status_code == 200
