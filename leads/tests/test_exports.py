"""CSV export from the board, the API and admin: columns, formula escaping, visibility, filters, streaming."""

import csv
import io
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.roles import Role
from leads import services
from leads.exports import EXPORT_HEADERS, escape_cell, stream_leads_csv
from leads.models import Activity, ImportRowError, Lead, Source, Stage
from leads.tests.factories import LeadFactory, UserFactory

BOARD_EXPORT = reverse("leads:board_export")
API_EXPORT = "/api/leads/export/"
API_LIST = "/api/leads/"
FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"]


def read_csv(response):
    """(rows as dicts, the raw bytes) of a streamed CSV response."""
    raw = b"".join(response.streaming_content)
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))), raw


def exported_ids(response):
    assert response.status_code == 200, response.status_code
    rows, _ = read_csv(response)
    return {int(row["ID"]) for row in rows}


def source(name):
    return Source.objects.get(name=name)


def stage(name):
    return Stage.objects.get(name=name)


@pytest.fixture
def api(sales):
    client = APIClient()
    client.force_authenticate(sales)
    return client


@pytest.fixture
def manager_api(manager):
    client = APIClient()
    client.force_authenticate(manager)
    return client


# --- columns and values ------------------------------------------------------------------------


def test_board_export_is_a_dated_csv_download_with_every_column(manager_client, sales):
    lead = LeadFactory(
        owner=sales,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@prospect.example",
        phone="+12125550123",
        company="Engines, Ltd",
        title="Countess",
        source=source("LinkedIn"),
        stage=stage("In Progress"),
        value=Decimal("1234.5"),
        notes='Line one\nLine "two", with a comma',
    )
    response = manager_client.get(BOARD_EXPORT)

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="leads-{timezone.localdate().isoformat()}.csv"'
    )
    rows, raw = read_csv(response)
    assert raw.startswith(b"\xef\xbb\xbf"), "a BOM, so spreadsheets read UTF-8"
    assert list(rows[0]) == EXPORT_HEADERS
    assert rows == [
        {
            "First name": "Ada",
            "Last name": "Lovelace",
            "E-mail": "ada@prospect.example",
            "Phone": "'+12125550123",  # E.164 as stored; "'" because a leading + is a formula
            "Company": "Engines, Ltd",
            "Title": "Countess",
            "Source": "LinkedIn",
            "Owner e-mail": sales.email,
            "Stage": "In Progress",
            "Value": "1234.50",
            "Notes": 'Line one\nLine "two", with a comma',
            "ID": str(lead.pk),
            "Created": lead.created_at.isoformat(),
        }
    ]


def test_an_unassigned_lead_has_an_empty_owner_and_a_zero_value(manager_client):
    LeadFactory(owner=None, value=0)
    rows, _ = read_csv(manager_client.get(BOARD_EXPORT))
    assert (rows[0]["Owner e-mail"], rows[0]["Value"]) == ("", "0.00")


def test_an_empty_export_still_has_its_header(manager_client):
    rows, raw = read_csv(manager_client.get(BOARD_EXPORT))
    assert rows == []
    assert raw.decode("utf-8-sig").splitlines() == [",".join(EXPORT_HEADERS)]


# --- formula escaping ----------------------------------------------------------------------------


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=repr)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_apostrophe(start, manager_client):
    payload = f'{start}HYPERLINK("http://evil.example","click")'
    assert escape_cell(payload) == "'" + payload
    LeadFactory(first_name=payload, company=payload, notes=payload, title=f"{start}1+1")

    row = read_csv(manager_client.get(BOARD_EXPORT))[0][0]
    assert row["First name"] == row["Company"] == row["Notes"] == "'" + payload
    assert row["Title"] == f"'{start}1+1"


@pytest.mark.parametrize(
    "text", ["Smith-Jones", "Acme - Widgets", "a=b", "x@y", "", "42", "'quoted'", "Ünïcödé ☃"]
)
def test_text_that_only_contains_those_characters_is_left_alone(text, manager_client):
    assert escape_cell(text) == text
    LeadFactory(company=text)
    assert read_csv(manager_client.get(BOARD_EXPORT))[0][0]["Company"] == text


def test_escape_cell_reads_none_and_numbers_as_text():
    assert escape_cell(None) == ""
    assert escape_cell(-5) == "'-5"
    assert escape_cell(Decimal("3.10")) == "3.10"


# --- only the leads the user may see ------------------------------------------------------------


@pytest.fixture
def private_world(settings, sales, other_sales, manager):
    settings.LEAD_SHARING = "private"
    own = LeadFactory(owner=sales)
    unassigned = LeadFactory(owner=None)
    others = LeadFactory(owner=other_sales)
    managers = LeadFactory(owner=manager)
    deleted = LeadFactory(owner=sales, deleted_at=timezone.now())
    return {"own": own, "unassigned": unassigned, "others": others, "managers": managers, "deleted": deleted}


def test_a_salesperson_exports_only_their_own_and_unassigned_leads(private_world, sales_client, api):
    expected = {private_world["own"].pk, private_world["unassigned"].pk}
    assert exported_ids(sales_client.get(BOARD_EXPORT)) == expected
    assert exported_ids(api.get(API_EXPORT)) == expected


def test_a_salesperson_cannot_reach_a_hidden_lead_by_filtering_for_it(
    private_world, sales_client, api, other_sales
):
    hidden = private_world["others"]
    for params in ({"owner": other_sales.pk}, {"query": hidden.email}):
        assert exported_ids(sales_client.get(BOARD_EXPORT, params)) == set()
        assert exported_ids(api.get(API_EXPORT, params)) == set()


def test_a_manager_exports_every_live_lead_but_no_deleted_one(private_world, manager_client, manager_api):
    expected = {private_world[k].pk for k in ("own", "unassigned", "others", "managers")}
    assert exported_ids(manager_client.get(BOARD_EXPORT)) == expected
    assert exported_ids(manager_api.get(API_EXPORT)) == expected


def test_under_read_sharing_a_salesperson_exports_every_live_lead(sales_client, other_sales, lead):
    theirs = LeadFactory(owner=other_sales)
    LeadFactory(owner=other_sales, deleted_at=timezone.now())
    assert exported_ids(sales_client.get(BOARD_EXPORT)) == {lead.pk, theirs.pk}


def test_the_board_export_needs_a_login(client, lead):
    response = client.get(BOARD_EXPORT)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_the_board_export_is_get_only(sales_client):
    assert sales_client.post(BOARD_EXPORT).status_code == 405


# --- filters: the same leads as the board and the API list -------------------------------------


@pytest.fixture
def mixed_leads(sales, other_sales):
    made = []
    for owner in (sales, other_sales, None):
        for source_name in ("Facebook", "Referral"):
            for stage_name in ("New Lead", "Won"):
                made.append(
                    LeadFactory(
                        owner=owner,
                        source=source(source_name),
                        stage=stage(stage_name),
                        company=f"{source_name} {stage_name} Co",
                    )
                )
    return made


def board_ids(client, params):
    response = client.get(reverse("leads:board"), params)
    return {lead.pk for column in response.context["columns"] for lead in column.leads}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"source": "facebook"},
        {"stage": "Won"},
        {"owner": "me"},
        {"owner": "unassigned"},
        {"query": "Referral"},
        {"source": "Referral", "stage": "New Lead", "owner": "me"},
    ],
    ids=str,
)
def test_the_export_holds_the_leads_the_board_and_the_api_list_show(params, mixed_leads, sales_client, api):
    on_board = board_ids(sales_client, params)
    listed = {row["id"] for row in api.get(API_LIST, {**params, "page_size": 100}).json()["leads"]}
    assert on_board == listed and on_board, "the fixture should make this filter match something"
    assert exported_ids(sales_client.get(BOARD_EXPORT, params)) == on_board
    assert exported_ids(api.get(API_EXPORT, params)) == listed


def test_the_board_link_carries_the_current_filters(sales_client, mixed_leads):
    body = sales_client.get(reverse("leads:board"), {"source": "Facebook", "stage": "Won"}).content.decode()
    assert f'href="{BOARD_EXPORT}?source=Facebook&amp;stage=Won"' in body
    assert f'href="{BOARD_EXPORT}"' in sales_client.get(reverse("leads:board")).content.decode()


def test_leads_in_archived_stages_are_left_out_as_on_the_board(manager_client, manager):
    shown = LeadFactory(owner=manager, stage=stage("New Lead"))
    LeadFactory(owner=manager, stage=stage("No Response"))
    Stage.objects.filter(name="No Response").update(archived=True)
    assert exported_ids(manager_client.get(BOARD_EXPORT)) == {shown.pk}


def test_an_invalid_board_filter_shows_the_board_with_the_error_not_a_file(sales_client, lead):
    response = sales_client.get(BOARD_EXPORT, {"stage": "nope"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "Unknown stage “nope”" in body and "No leads are shown until the filter is fixed." in body


def test_an_invalid_api_filter_is_a_400_naming_the_filter(api, lead):
    response = api.get(API_EXPORT, {"source": "nowhere", "created_after": "yesterday"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["fields"]) == {"source", "created_after"}


def test_the_api_export_follows_the_ordering_parameter(manager_api, manager):
    cheap = LeadFactory(owner=manager, value=5)
    dear = LeadFactory(owner=manager, value=500)
    rows, _ = read_csv(manager_api.get(API_EXPORT, {"ordering": "-value"}))
    assert [int(row["ID"]) for row in rows] == [dear.pk, cheap.pk]
    rows, _ = read_csv(manager_api.get(API_EXPORT, {"ordering": "value"}))
    assert [int(row["ID"]) for row in rows] == [cheap.pk, dear.pk]


# --- the API endpoint ---------------------------------------------------------------------------


def test_the_api_export_is_csv_not_paginated(api, sales):
    Lead.objects.bulk_create(
        LeadFactory.build(owner=sales, email=f"many{i}@prospect.example") for i in range(130)
    )
    response = api.get(API_EXPORT, {"page_size": 10, "page": 2})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    assert len(exported_ids(response)) == 130


def test_the_api_export_answers_a_client_that_asks_for_csv(api, lead):
    response = api.get(API_EXPORT, HTTP_ACCEPT="text/csv")
    assert exported_ids(response) == {lead.pk}
    # And one that asks for JSON still gets the file: the endpoint has one representation.
    assert exported_ids(api.get(API_EXPORT, HTTP_ACCEPT="application/json")) == {lead.pk}


def test_the_api_export_refuses_anonymous_callers_with_401(lead):
    response = APIClient().get(API_EXPORT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_api_export_with_a_jwt_as_integrators_call_it(client, sales, lead):
    token = client.post("/api/auth/token/", {"email": sales.email, "password": "correct-horse-battery"})
    access = token.json()["access"]
    response = client.get(API_EXPORT, HTTP_AUTHORIZATION=f"Bearer {access}")
    assert exported_ids(response) == {lead.pk}


# --- streaming -----------------------------------------------------------------------------------


def test_the_first_chunk_leaves_before_the_last_row_is_read(manager_client, manager):
    Lead.objects.bulk_create(
        LeadFactory.build(owner=manager, email=f"bulk{i}@prospect.example") for i in range(1_200)
    )
    response = manager_client.get(BOARD_EXPORT)
    assert isinstance(response, StreamingHttpResponse)

    chunks = iter(response.streaming_content)
    first = next(chunks)
    first_lines = first.decode("utf-8-sig").splitlines()
    assert first_lines[0] == ",".join(EXPORT_HEADERS)
    assert len(first_lines) == 1 + 500, "one chunk per 500 rows, not the whole file"

    rest = b"".join(chunks)
    rows = list(csv.DictReader(io.StringIO((first + rest).decode("utf-8-sig"))))
    assert len(rows) == 1_200 and len({row["ID"] for row in rows}) == 1_200


def test_stream_leads_csv_yields_bytes_and_reads_one_query(manager, django_assert_num_queries):
    Lead.objects.bulk_create(
        LeadFactory.build(owner=manager, email=f"q{i}@prospect.example") for i in range(1_100)
    )
    with django_assert_num_queries(1):
        chunks = list(stream_leads_csv(Lead.objects.all()))
    assert all(isinstance(chunk, bytes) for chunk in chunks)
    assert len(chunks) == 3  # 500 + 500 + the last 100 rows


@pytest.mark.parametrize("n_leads", [10, 500])
@pytest.mark.parametrize("door", ["board", "api"])
def test_an_export_reads_a_fixed_number_of_queries(
    n_leads, door, sales, sales_client, api, django_assert_max_num_queries
):
    other = UserFactory(role=Role.SALES)
    Lead.objects.bulk_create(
        LeadFactory.build(owner=owner, email=f"n{i}@prospect.example", source=source("Facebook"))
        for i, owner in zip(range(n_leads), [sales, other, None] * n_leads)
    )
    params = {"source": "Facebook", "owner": str(other.pk), "query": "prospect"}
    # Board: session, user, the source and owner filters, the board's stages, the rows. API: no session.
    with django_assert_max_num_queries(6 if door == "board" else 3):
        if door == "board":
            response = sales_client.get(BOARD_EXPORT, params)
        else:
            response = api.get(API_EXPORT, params)
        rows, _ = read_csv(response)
    assert len(rows) == len(range(1, n_leads, 3))


def test_under_asgi_the_file_streams_one_chunk_at_a_time(manager):
    """An ASGI server given a sync iterator would read it whole first: the export is async there."""
    Lead.objects.bulk_create(
        LeadFactory.build(owner=manager, email=f"asgi{i}@prospect.example") for i in range(700)
    )

    async def download():
        client = AsyncClient()
        await client.aforce_login(manager)
        response = await client.get(BOARD_EXPORT)
        assert response.is_async
        return response, [chunk async for chunk in response.streaming_content]

    # async_to_sync from this thread: the view's database work runs here, in the test's transaction.
    response, chunks = async_to_sync(download)()
    assert response.status_code == 200
    assert len(chunks) == 2
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(rows) == 700


# --- admin ---------------------------------------------------------------------------------------


def admin_action(client, lead_ids, **extra):
    return client.post(
        reverse("admin:leads_lead_changelist") + extra.pop("query", ""),
        {"action": "export_selected_to_csv", "_selected_action": [str(pk) for pk in lead_ids], **extra},
    )


def test_admin_exports_the_selected_leads(manager_client, sales):
    chosen = [LeadFactory(owner=sales), LeadFactory(owner=None)]
    LeadFactory(owner=sales)
    response = admin_action(manager_client, [lead.pk for lead in chosen])
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert exported_ids(response) == {lead.pk for lead in chosen}


def test_admin_select_all_exports_the_filtered_and_searched_list(
    manager_client, sales, django_assert_max_num_queries
):
    wanted = [LeadFactory(owner=sales, company="Globex Widgets", source=source("Referral")) for _ in range(3)]
    LeadFactory(owner=sales, company="Globex Other", source=source("Facebook"))
    LeadFactory(owner=sales, company="Initech", source=source("Referral"))
    with django_assert_max_num_queries(11):
        response = admin_action(
            manager_client,
            [wanted[0].pk],
            select_across="1",
            query=f"?q=globex&source__id__exact={source('Referral').pk}",
        )
        ids = exported_ids(response)
    assert ids == {lead.pk for lead in wanted}


def test_the_admin_offers_the_export_action(manager_client, lead):
    body = manager_client.get(reverse("admin:leads_lead_changelist")).content.decode()
    assert 'value="export_selected_to_csv"' in body and "Export selected to CSV" in body


def test_salespeople_cannot_use_the_admin_export(sales_client, lead):
    response = admin_action(sales_client, [lead.pk])
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- round trip: export, re-import in update mode, nothing changes ------------------------------


def lead_state():
    return list(Lead.objects.order_by("pk").values())


def test_exporting_and_reimporting_in_update_mode_changes_nothing(
    manager, manager_api, sales, django_capture_on_commit_callbacks
):
    imports = pytest.importorskip("leads.imports")
    for i, start in enumerate(FORMULA_STARTS):
        services.create_lead(
            actor=manager,
            owner=sales if i % 2 else None,
            first_name=f"Ré{i}",
            last_name="Smith-Jones",
            email=f"round{i}@prospect.example" if i % 3 else "",
            phone=f"+1212555{i:04d}",
            company=f"{start}SUM(A1:A2)" if start.strip() else f"Acme{i}",
            title="Head of =Things",
            source=source("Referral"),
            stage=stage("In Progress" if i % 2 else "New Lead"),
            value=Decimal("1234.50") + i,
            notes=f'@first\nsecond, "quoted" line {i}\n-third',
        )
    services.create_lead(actor=manager, name="Not Exported", email="other@prospect.example",
                         source=source("Facebook"))  # fmt: skip
    before_leads, before_activities = lead_state(), list(Activity.objects.values_list("pk", flat=True))

    response = manager_api.get(API_EXPORT, {"source": "Referral"})
    rows, data = read_csv(response)
    assert len(rows) == len(FORMULA_STARTS)

    try:
        job = imports.start_upload(actor=manager, file=SimpleUploadedFile("export.csv", data, "text/csv"))
    except NotImplementedError:
        pytest.skip("the import engine (leads.imports) is still a stub")
    job = imports.configure_import(
        job=job, actor=manager, mapping=job.mapping, defaults={}, duplicate_mode="update"
    )
    with django_capture_on_commit_callbacks(execute=True):  # the queued task runs in-process
        imports.queue_import(job=job, actor=manager)
    job.refresh_from_db()

    failures = list(ImportRowError.objects.filter(job=job).values_list("line", "reason"))
    assert (job.status, job.failed_count, job.created_count) == ("done", 0, 0), (job.error, failures)
    assert job.total_rows == job.updated_count + job.skipped_count == len(rows), "every row was matched"
    assert lead_state() == before_leads, "re-importing an export changed a lead"
    assert list(Activity.objects.values_list("pk", flat=True)) == before_activities
