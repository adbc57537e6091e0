"""leads/charts.py: escaping, scaling without negatives, empty states and the text alternative."""

import re

import pytest

from leads import charts
from leads.templatetags.dashboard_tags import duration, money, percent


def bar(label, value, **kwargs):
    return charts.Bar(label, value, **kwargs)


def test_labels_are_escaped_everywhere():
    evil = '<script>alert("x")</script>'
    html = charts.bar_chart(
        chart_id="c", title=f"Title {evil}", bars=[bar(evil, 3, href='/board/?a=1&b="2"')]
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="/board/?a=1&amp;b=&quot;2&quot;"' in html
    html = charts.column_chart(chart_id="d", title="t", bars=[bar(evil, 1)])
    assert "<script>" not in html
    html = charts.grouped_column_chart(
        chart_id="g", title="t", series=[charts.Series("won", evil)], groups=[charts.Group(evil, {"won": 1})]
    )
    assert "<script>" not in html


def test_a_chart_has_role_title_desc_and_a_data_table():
    html = charts.bar_chart(
        chart_id="src", title="Leads by source", bars=[bar("Facebook", 12), bar("Web", 3)]
    )
    assert 'role="img"' in html and 'aria-labelledby="src-title src-desc"' in html
    assert '<title id="src-title">Leads by source</title>' in html
    assert '<desc id="src-desc">Leads by source: Facebook: 12; Web: 3.</desc>' in html
    assert '<th scope="row">Facebook</th><td>12</td>' in html
    assert re.search(r'viewBox="0 0 480 \d+"', html)
    assert "style=" not in html and "<script" not in html


def test_bars_scale_to_the_largest_and_never_go_negative():
    html = charts.bar_chart(
        chart_id="c", title="t", bars=[bar("a", 10), bar("b", 5), bar("c", -4), bar("d", None)]
    )
    widths = [
        float(w) for w in re.findall(r'class="chart-bar" x="[\d.]+" y="[\d.]+" width="([\d.-]+)"', html)
    ]
    assert widths[0] == pytest.approx(2 * widths[1])
    assert widths[2] == 0 and widths[3] == 0
    assert all(w >= 0 for w in widths)


def test_columns_have_no_negative_heights():
    html = charts.column_chart(
        chart_id="c", title="t", bars=[bar("1 Jan", 2), bar("2 Jan", -3), bar("3 Jan", 0)]
    )
    heights = [float(h) for h in re.findall(r'height="([\d.-]+)"/>', html)]
    assert all(h >= 0 for h in heights)


@pytest.mark.parametrize(
    "build",
    [
        lambda: charts.bar_chart(chart_id="e", title="Empty", bars=[]),
        lambda: charts.bar_chart(chart_id="e", title="Empty", bars=[bar("a", 0)]),
        lambda: charts.column_chart(chart_id="e", title="Empty", bars=[bar("1 Jan", 0)]),
        lambda: charts.grouped_column_chart(
            chart_id="e", title="Empty", series=[charts.Series("won", "Won")], groups=[]
        ),
    ],
)
def test_no_data_draws_the_empty_state(build):
    html = build()
    assert "No leads in this range" in html
    assert 'class="chart-svg chart-empty"' in html
    assert '<desc id="e-desc">Empty: No leads in this range.</desc>' in html


def test_ticks_are_round_and_cover_the_largest():
    assert charts.nice_ticks(3) == [0, 1, 2, 3]
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(-5) == [0, 1]
    assert charts.nice_ticks(97)[-1] >= 97
    assert charts.nice_ticks(1.3, whole=False)[-1] >= 1.3


def test_a_long_daily_series_labels_only_some_days():
    html = charts.column_chart(chart_id="d", title="t", bars=[bar(f"day {n}", n % 5) for n in range(90)])
    assert html.count('class="chart-tick"') < 30
    assert "<tr>" in html and html.count('<th scope="row">') == 90


def test_grouped_columns_have_a_legend_and_series_classes():
    html = charts.grouped_column_chart(
        chart_id="w",
        title="Won and lost",
        series=[charts.Series("won", "Won"), charts.Series("lost", "Lost")],
        groups=[charts.Group("1 Jan", {"won": 2, "lost": 1})],
    )
    assert 'class="chart-legend series-won"' in html and 'class="chart-col series-lost"' in html
    assert "1 Jan: 2 won, 1 lost" in html


def test_figures_read_as_people_say_them():
    from datetime import timedelta
    from decimal import Decimal

    assert duration(timedelta(days=2, hours=3, minutes=5)) == "2 days 3 hours"
    assert duration(timedelta(hours=1, minutes=1)) == "1 hour 1 minute"
    assert duration(timedelta(seconds=20)) == "under a minute"
    assert duration(None) == "—"
    assert percent(0.42857) == "42.9%" and percent(None) == "—"
    assert money(Decimal("12500.00")) == "$12,500"
