"""The /dashboard/ page and its CSV tables: who sees what, filters in the URL, charts, links, queries."""

import csv
import io
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from leads import services
from leads.models import Lead, Source, Stage
from leads.tests.factories import UserFactory

URL = reverse("leads:dashboard")
CHART_IDS = ("by-stage", "by-source", "per-day", "won-lost", "time-in-stage")


def csv_url(table):
    return reverse("leads:dashboard_csv", args=[table])


def won_stage():
    return Stage.objects.get(kind=Stage.Kind.WON, archived=False)


@pytest.fixture
def pipeline(manager, sales, other_sales):
    """sales won a $5,000 lead and holds a new one; other_sales won $7,777 and holds a new one."""
    mine = services.create_lead(actor=sales, name="Ada Mine", email="ada@prospect.example", value=5000)
    services.create_lead(actor=sales, name="Bea Mine", email="bea@prospect.example", value=100)
    theirs = services.create_lead(
        actor=other_sales, name="Cy Theirs", email="cy@prospect.example", value=7777
    )
    services.create_lead(actor=other_sales, name="Di Theirs", email="di@prospect.example")
    services.move_lead(lead=mine, stage=won_stage(), actor=sales)
    services.move_lead(lead=theirs, stage=won_stage(), actor=other_sales)
    return {"mine": mine, "theirs": theirs}


def links(content):
    return [unescape(href) for href in re.findall(r'href="([^"]+)"', content)]


def board_links(content):
    """Links to the board with filters (the nav's plain /board/ links left out)."""
    return [u for u in map(urlparse, links(content)) if u.path == reverse("leads:board") and u.query]


def csv_rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- who sees what ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_nav_links_to_the_dashboard(sales_client):
    response = sales_client.get(reverse("leads:board"))
    assert f'href="{URL}"' in response.content.decode()


def test_a_manager_sees_the_team_and_an_owner_filter(manager_client, pipeline, sales, other_sales):
    response = manager_client.get(URL)
    content = response.content.decode()
    assert response.status_code == 200
    assert "Team dashboard" in content
    assert 'name="owner"' in content
    assert str(sales) in content and str(other_sales) in content
    assert "$7,777" in content and "$5,000" in content
    assert "$12,777" in content  # the Won tile: both wins


def test_a_manager_can_narrow_to_one_owner(manager_client, pipeline, sales):
    content = manager_client.get(URL, {"owner": sales.pk}).content.decode()
    assert "$5,000" in content
    assert "$7,777" not in content
    assert f'<option value="{sales.pk}" selected>' in content


def test_sales_see_only_their_own_numbers(sales_client, pipeline, other_sales):
    content = sales_client.get(URL).content.decode()
    assert "My dashboard" in content
    assert 'name="owner"' not in content
    assert "$5,000" in content
    assert "$7,777" not in content
    assert str(other_sales) not in content


def test_sales_cannot_ask_for_someone_elses_numbers(sales_client, pipeline, other_sales):
    response = sales_client.get(URL, {"owner": other_sales.pk})
    content = response.content.decode()
    assert response.status_code == 200
    assert "$7,777" not in content and "$5,000" in content


# --- filters in the URL ----------------------------------------------------------------------


@pytest.mark.parametrize("preset, days", [("today", 0), ("7d", 6), ("30d", 29)])
def test_presets_pick_their_range(manager_client, preset, days):
    content = manager_client.get(URL, {"range": preset}).content.decode()
    today = timezone.localdate()
    assert f'<option value="{preset}" selected>' in content
    assert f'name="start" id="id_start" value="{today - timedelta(days=days):%Y-%m-%d}"' in content
    assert f'name="end" id="id_end" value="{today:%Y-%m-%d}"' in content


def test_this_quarter_starts_on_the_quarters_first_day(manager_client):
    content = manager_client.get(URL, {"range": "quarter"}).content.decode()
    today = timezone.localdate()
    first = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
    assert f'value="{first:%Y-%m-%d}"' in content


def test_a_custom_range_stays_in_the_url_and_the_form(manager_client, manager):
    lead = services.create_lead(actor=manager, name="Old Timer", email="old@prospect.example")
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(days=400))
    start = timezone.localdate() - timedelta(days=401)
    end = timezone.localdate() - timedelta(days=399)
    response = manager_client.get(URL, {"range": "custom", "start": start, "end": end})
    content = response.content.decode()
    assert response.status_code == 200
    assert '<option value="custom" selected>' in content
    assert f'value="{start:%Y-%m-%d}"' in content and f'value="{end:%Y-%m-%d}"' in content
    # The New leads tile counts the one lead created back then.
    assert re.search(r"New leads</span>\s*<span class=\"kpi-value\" data-kpi>1<", content)
    # The CSV links carry the same filters.
    assert f"{csv_url('agent-performance')}?range=custom&amp;start={start:%Y-%m-%d}" in content


def test_a_bad_date_is_a_400_with_the_message_inline(manager_client):
    response = manager_client.get(URL, {"range": "custom", "start": "2024-02-30"})
    content = response.content.decode()
    assert response.status_code == 400
    assert 'role="alert"' in content
    assert "is not a date" in content
    assert 'id="id_start" value="2024-02-30" aria-invalid="true"' in content
    assert "<svg" not in content.split("</header>", 1)[1]  # no figures under a broken filter


def test_an_end_before_the_start_says_so(manager_client):
    response = manager_client.get(URL, {"range": "custom", "start": "2024-03-10", "end": "2024-03-01"})
    assert response.status_code == 400
    assert "before the start date" in response.content.decode()


def test_an_unknown_source_says_so(manager_client):
    response = manager_client.get(URL, {"source": "Carrier pigeon"})
    assert response.status_code == 400
    assert "Unknown source" in response.content.decode()


# --- charts ----------------------------------------------------------------------------------


def test_every_chart_has_a_title_a_description_and_its_figures(manager_client, pipeline):
    content = manager_client.get(URL).content.decode()
    for chart_id in CHART_IDS:
        figure = re.search(rf'<figure class="chart" id="chart-{chart_id}">(.*?)</figure>', content, re.S)
        assert figure, chart_id
        body = figure.group(1)
        assert 'role="img"' in body
        assert f'<title id="{chart_id}-title">' in body and f'<desc id="{chart_id}-desc">' in body
        assert '<table class="data-table">' in body
        assert "<script" not in body and "style=" not in body
    assert "Won: 2" in content  # the stage chart's text alternative


def test_an_empty_database_shows_every_charts_empty_state(manager_client):
    Lead.objects.all().delete()
    response = manager_client.get(URL)
    content = response.content.decode()
    assert response.status_code == 200
    assert content.count('class="chart-svg chart-empty"') == len(CHART_IDS)
    assert "No leads yet" in content  # the stage chart
    assert "No leads in this range" in content
    assert "No stage moves in this range" in content
    assert "No leads won or lost in this range" in content
    assert "Nobody won a lead in this range." in content
    assert re.search(r'Conversion rate</span>\s*<span class="kpi-value" data-kpi>—<', content)


# --- links to the leads behind each number ---------------------------------------------------


def test_numbers_link_to_the_board_with_the_right_filters(sales_client, pipeline, sales):
    content = sales_client.get(URL).content.decode()
    queries = [parse_qs(link.query) for link in board_links(content)]
    assert queries, "no board links"
    # A salesperson's links always name them as the owner.
    assert all(q.get("owner") == [str(sales.pk)] for q in queries)
    tiles = dict(
        (label, parse_qs(urlparse(unescape(href)).query))
        for href, label in re.findall(
            r'class="kpi-link" href="([^"]+)"><span class="kpi-label">([^<]+)<', content
        )
    )
    # Won: moved into the won stage in the range, whenever created; open now whenever created;
    # new: created in the range.
    assert set(tiles["Won"]) == {"owner", "stage", "stage_changed_after", "stage_changed_before"}
    assert tiles["Won"]["stage"] == [str(won_stage().pk)]
    assert tiles["Open leads"] == {"owner": [str(sales.pk)]}
    assert set(tiles["New leads"]) == {"owner", "created_after", "created_before"}


def test_a_link_opens_the_board_on_the_leads_it_counted(manager_client, pipeline, other_sales):
    content = manager_client.get(URL, {"owner": other_sales.pk}).content.decode()
    won_link = next(
        link for link in board_links(content) if parse_qs(link.query).get("stage") == [str(won_stage().pk)]
    )
    board = manager_client.get(f"{won_link.path}?{won_link.query}").content.decode()
    assert "Cy Theirs" in board
    assert "Ada Mine" not in board and "Di Theirs" not in board
    new_link = next(link for link in board_links(content) if "created_after" in parse_qs(link.query))
    board = manager_client.get(f"{new_link.path}?{new_link.query}").content.decode()
    assert "Cy Theirs" in board and "Di Theirs" in board and "Ada Mine" not in board
    assert "Only leads created from" in board


def test_the_per_day_chart_links_one_day(manager_client, pipeline):
    content = manager_client.get(URL, {"range": "today"}).content.decode()
    figure = re.search(r'id="chart-per-day">(.*?)</figure>', content, re.S).group(1)
    (link,) = [urlparse(h) for h in links(figure)]
    query = parse_qs(link.query)
    after, before = query["created_after"][0], query["created_before"][0]
    assert after[:10] == f"{timezone.localdate():%Y-%m-%d}"
    assert before[:10] == f"{timezone.localdate() + timedelta(days=1):%Y-%m-%d}"


# --- CSV downloads ---------------------------------------------------------------------------


def test_csv_top_salespeople(manager_client, pipeline, sales, other_sales):
    response = manager_client.get(csv_url("top-salespeople"), {"range": "7d"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment; filename=" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0] == ["Salesperson", "Won", "Won value"]
    assert rows[1:] == [[str(other_sales), "1", "7777.00"], [str(sales), "1", "5000.00"]]


def test_csv_agent_performance_and_source_effectiveness(manager_client, pipeline, sales):
    rows = csv_rows(manager_client.get(csv_url("agent-performance")))
    assert rows[0][:3] == ["Salesperson", "Leads owned", "New leads"]
    assert rows[0][-1] == "Conversion rate (%)"
    mine = next(r for r in rows if r[0] == str(sales))
    assert mine[1:3] == ["2", "2"] and mine[-3:] == ["1", "0", "100.0"]
    rows = csv_rows(manager_client.get(csv_url("source-effectiveness")))
    assert rows == [["Source", "Leads", "Won", "Conversion rate (%)"], ["Manual", "4", "2", "100.0"]]


def test_csv_cells_cannot_run_as_formulas(manager_client, manager):
    for n, name in enumerate(["=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\tx"]):
        Source.objects.create(name=name)
        services.create_lead(
            actor=manager,
            name="Formula Lead",
            email=f"f{n}@prospect.example",
            source=Source.objects.get(name=name),
        )
    rows = csv_rows(manager_client.get(csv_url("source-effectiveness")))
    names = {r[0] for r in rows[1:]}
    assert names == {"'=HYPERLINK(1)", "'+1", "'-1", "'@SUM(A1)", "'\tx"}


def test_csv_for_sales_holds_only_their_rows(sales_client, pipeline, sales, other_sales):
    for table in ("top-salespeople", "agent-performance"):
        rows = csv_rows(sales_client.get(csv_url(table), {"owner": other_sales.pk}))
        assert [r[0] for r in rows[1:]] == [str(sales)], table
    rows = csv_rows(sales_client.get(csv_url("source-effectiveness")))
    assert rows[1:] == [["Manual", "2", "1", "100.0"]]  # their two leads, one won; not the team's four


def test_csv_refuses_bad_filters_and_unknown_tables(manager_client):
    response = manager_client.get(csv_url("agent-performance"), {"range": "custom", "start": "nope"})
    assert response.status_code == 400
    assert "start: " in response.content.decode()
    assert manager_client.get(csv_url("salaries")).status_code == 404
    manager_client.logout()
    assert manager_client.get(csv_url("agent-performance")).status_code == 302


# --- queries ---------------------------------------------------------------------------------


def _more_leads(count, owners):
    stage = won_stage()
    for n in range(count):
        owner = owners[n % len(owners)]
        lead = services.create_lead(actor=owner, name=f"Bulk {n}", email=f"bulk{n}@prospect.example", value=n)
        if n % 3 == 0:
            services.move_lead(lead=lead, stage=stage, actor=owner)


@pytest.mark.parametrize("extra_leads", [0, 40])
def test_the_page_reads_a_fixed_number_of_queries(
    manager_client, pipeline, sales, other_sales, extra_leads, django_assert_max_num_queries
):
    _more_leads(extra_leads, [sales, other_sales, UserFactory()])
    with django_assert_max_num_queries(22):
        response = manager_client.get(URL, {"source": "Manual"})
    assert response.status_code == 200


@pytest.mark.parametrize("extra_leads", [0, 40])
def test_csv_reads_a_fixed_number_of_queries(
    sales_client, pipeline, sales, extra_leads, django_assert_max_num_queries
):
    _more_leads(extra_leads, [sales])
    with django_assert_max_num_queries(8):
        response = sales_client.get(csv_url("agent-performance"))
        b"".join(response.streaming_content)
