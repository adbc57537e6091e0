"""Inline-SVG charts for the dashboard: bar, column and grouped column charts, each with a data table."""

import math
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import mark_safe

EMPTY_TEXT = "No leads in this range"
WIDTH = 480
FONT = 13
LABEL_CHARS = 18


@dataclass(frozen=True)
class Bar:
    """One bar: what it is, how long it is, what it says, and the page listing what it counts."""

    label: str
    value: float
    text: str | None = None  # the value as people read it ("2 days 3 hours"); the number by default
    href: str | None = None
    css: str = ""  # an extra class ("kind-won") that picks the colour in app.css


@dataclass(frozen=True)
class Series:
    key: str  # class suffix and dict key: "won" -> class "series-won"
    name: str


@dataclass(frozen=True)
class Group:
    """One cluster of a grouped column chart: a label and a value (and link) per series key."""

    label: str
    values: dict
    hrefs: dict = field(default_factory=dict)


# --- numbers and scales ----------------------------------------------------------------------


def _positive(value):
    """Lengths cannot be negative or NaN: such a value draws as zero rather than breaking the chart."""
    try:
        value = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return value if value > 0 and math.isfinite(value) else 0.0


def plain_number(value):
    """1200 -> "1,200", 2.5 -> "2.5": axis ticks and default value labels."""
    value = float(value)
    if value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def nice_ticks(largest, *, whole=True, steps=4):
    """Axis ticks from 0 past `largest` in round steps (1, 2 or 5 × 10ⁿ); whole numbers for counts."""
    largest = _positive(largest)
    if largest == 0:
        return [0, 1]
    rough = largest / steps
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    if whole:
        step = max(1, round(step))
    top = math.ceil(largest / step - 1e-9) * step
    count = int(round(top / step))
    return [round(i * step, 10) for i in range(count + 1)]


def _short(label):
    label = str(label)
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


# --- shared markup ---------------------------------------------------------------------------


def _svg_open(chart_id, title, desc, height, css):
    return (
        f'<svg class="chart-svg {css}" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'preserveAspectRatio="xMinYMin meet" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-size="{FONT}">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>'
    )


def _empty_svg(chart_id, title, empty_text):
    height = 120
    return (
        _svg_open(chart_id, title, f"{title}: {empty_text}.", height, "chart-empty")
        + f'<rect class="chart-empty-box" x="1" y="1" width="{WIDTH - 2}" height="{height - 2}" rx="8"/>'
        + f'<text class="chart-empty-text" x="{WIDTH / 2}" y="{height / 2 + 5}" text-anchor="middle">'
        + f"{escape(empty_text)}</text></svg>"
    )


def _cell(text, href):
    text = escape(text)
    return f'<a href="{escape(href)}">{text}</a>' if href else text


def _figure(chart_id, title, svg, table):
    return mark_safe(  # every label and value below went through escape()
        f'<figure class="chart" id="chart-{chart_id}">'
        f'<figcaption class="chart-title">{escape(title)}</figcaption>{svg}'
        f'<details class="chart-data"><summary>Show the figures<span class="visually-hidden"> for '
        f"{escape(title)}</span></summary>{table}</details></figure>"
    )


def _table(headers, rows):
    """rows: lists of (text, href) cells; the first cell of each row is its header."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for cells in rows:
        (first, first_href), rest = cells[0], cells[1:]
        body.append(
            f'<tr><th scope="row">{_cell(first, first_href)}</th>'
            + "".join(f"<td>{_cell(text, href)}</td>" for text, href in rest)
            + "</tr>"
        )
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}">{escape(EMPTY_TEXT)}</td></tr>')
    return f'<table class="data-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _text(bar):
    return bar.text if bar.text is not None else plain_number(_positive(bar.value))


# --- charts ----------------------------------------------------------------------------------


def bar_chart(
    *,
    chart_id,
    title,
    bars,
    value_name="Leads",
    axis_label=None,
    empty_text=EMPTY_TEXT,
    whole=True,
    tick_format=plain_number,
    label_name="",
    zeros_are_data=False,
):
    """Horizontal bars, one per row, labels on the left and the value at each bar's end.

    All-zero bars draw the empty state, unless `zeros_are_data` (an average of "under a minute").
    """
    bars = list(bars)
    rows = [[(b.label, None), (_text(b), b.href)] for b in bars]
    table = _table([label_name or "", value_name], rows)
    if not bars or not (zeros_are_data or any(_positive(b.value) for b in bars)):
        return _figure(chart_id, title, _empty_svg(chart_id, title, empty_text), table)

    label_w, value_w, row_h, top, bottom = 130, 100, 28, 10, 44
    plot_w = WIDTH - label_w - value_w
    ticks = nice_ticks(max(_positive(b.value) for b in bars) or 1, whole=whole)
    scale = plot_w / ticks[-1]
    height = top + row_h * len(bars) + bottom
    axis_y = top + row_h * len(bars)
    desc = f"{title}: " + "; ".join(f"{b.label}: {_text(b)}" for b in bars) + "."

    parts = [_svg_open(chart_id, title, desc, height, "chart-bars")]
    for tick in ticks:
        x = label_w + tick * scale
        parts.append(f'<line class="chart-grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}"/>')
        parts.append(
            f'<text class="chart-tick" x="{x:.1f}" y="{axis_y + 15}" text-anchor="middle">'
            f"{escape(tick_format(tick))}</text>"
        )
    for i, bar in enumerate(bars):
        y = top + i * row_h
        width = _positive(bar.value) * scale
        parts.append(
            f'<g class="chart-row {escape(bar.css)}"><title>{escape(bar.label)}: {escape(_text(bar))}</title>'
            f'<text class="chart-label" x="{label_w - 8}" y="{y + row_h / 2 + 4}" text-anchor="end">'
            f"{escape(_short(bar.label))}</text>"
            f'<rect class="chart-bar" x="{label_w}" y="{y + 5}" width="{width:.1f}" '
            f'height="{row_h - 10}" rx="3"/>'
            f'<text class="chart-value" x="{label_w + width + 6:.1f}" y="{y + row_h / 2 + 4}">'
            f"{escape(_text(bar))}</text></g>"
        )
    parts.append(
        f'<line class="chart-axis" x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}"/>'
    )
    parts.append(
        f'<text class="chart-axis-label" x="{label_w + plot_w / 2}" y="{height - 6}" text-anchor="middle">'
        f"{escape(axis_label or value_name)}</text></svg>"
    )
    return _figure(chart_id, title, "".join(parts), table)


def column_chart(
    *,
    chart_id,
    title,
    bars,
    value_name="New leads",
    axis_label="Day",
    empty_text=EMPTY_TEXT,
    label_name="Day",
):
    """Vertical columns for a series (one per day): few x labels, value labels while they fit."""
    bars = list(bars)
    rows = [[(b.label, None), (_text(b), b.href)] for b in bars]
    table = _table([label_name, value_name], rows)
    values = [_positive(b.value) for b in bars]
    if not bars or not any(values):
        return _figure(chart_id, title, _empty_svg(chart_id, title, empty_text), table)

    left, right, top, bottom, plot_h = 48, 12, 20, 48, 170
    plot_w = WIDTH - left - right
    height = top + plot_h + bottom
    ticks = nice_ticks(max(values))
    scale = plot_h / ticks[-1]
    slot = plot_w / len(bars)
    bar_w = max(slot * 0.7, 1)
    label_every = max(1, math.ceil(len(bars) / 8))
    largest = max(values)
    total = sum(values)
    busiest = next(b for b in bars if _positive(b.value) == largest)
    nonzero = [f"{b.label}: {_text(b)}" for b in bars if _positive(b.value)]
    desc = (
        f"{title}, {bars[0].label} to {bars[-1].label}: {plain_number(total)} in all, "
        f"most on {busiest.label} ({_text(busiest)}). "
        + ("Days with any: " + "; ".join(nonzero) + "." if len(nonzero) <= 31 else "")
    ).strip()
    axis_y = top + plot_h

    parts = [_svg_open(chart_id, title, desc, height, "chart-columns")]
    parts += _y_axis(ticks, scale, left, plot_w, axis_y)
    for i, bar in enumerate(bars):
        value = values[i]
        x = left + i * slot + (slot - bar_w) / 2
        h = value * scale
        label_value = value and (len(bars) <= 31 or value == largest)
        parts.append(
            f'<g class="chart-col {escape(bar.css)}"><title>{escape(bar.label)}: {escape(_text(bar))}</title>'
            f'<rect class="chart-bar" x="{x:.1f}" y="{axis_y - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}"/>'
            + (
                f'<text class="chart-value" x="{x + bar_w / 2:.1f}" y="{axis_y - h - 4:.1f}" '
                f'text-anchor="middle" font-size="11">{escape(_text(bar))}</text>'
                if label_value
                else ""
            )
            + "</g>"
        )
        if i % label_every == 0:
            parts.append(
                f'<text class="chart-tick" x="{x + bar_w / 2:.1f}" y="{axis_y + 15}" text-anchor="middle">'
                f"{escape(_short(bar.label))}</text>"
            )
    parts.append(
        f'<text class="chart-axis-label" x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        f"{escape(axis_label)}</text>"
        f'<text class="chart-axis-label" x="12" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">{escape(value_name)}</text></svg>'
    )
    return _figure(chart_id, title, "".join(parts), table)


def grouped_column_chart(
    *, chart_id, title, groups, series, axis_label="Week starting", empty_text=EMPTY_TEXT, label_name="Week"
):
    """Side-by-side columns per group (won and lost per week), with a legend."""
    groups = list(groups)
    rows = [
        [(g.label, None)]
        + [(plain_number(_positive(g.values.get(s.key))), g.hrefs.get(s.key)) for s in series]
        for g in groups
    ]
    table = _table([label_name] + [s.name for s in series], rows)
    values = [_positive(g.values.get(s.key)) for g in groups for s in series]
    if not groups or not any(values):
        return _figure(chart_id, title, _empty_svg(chart_id, title, empty_text), table)

    left, right, top, bottom, plot_h = 48, 12, 34, 48, 160
    plot_w = WIDTH - left - right
    height = top + plot_h + bottom
    ticks = nice_ticks(max(values))
    scale = plot_h / ticks[-1]
    slot = plot_w / len(groups)
    bar_w = max(slot * 0.8 / len(series), 1)
    label_every = max(1, math.ceil(len(groups) / 8))
    axis_y = top + plot_h
    desc = (
        f"{title}: "
        + "; ".join(
            f"{g.label}: "
            + ", ".join(f"{plain_number(_positive(g.values.get(s.key)))} {s.name.lower()}" for s in series)
            for g in groups
        )
        + "."
    )

    parts = [_svg_open(chart_id, title, desc, height, "chart-grouped")]
    for i, s in enumerate(series):  # the legend, top left
        x = left + i * 90
        parts.append(
            f'<g class="chart-legend series-{escape(s.key)}"><rect class="chart-bar" x="{x}" y="6" '
            f'width="12" height="12" rx="2"/><text class="chart-label" x="{x + 17}" y="16">'
            f"{escape(s.name)}</text></g>"
        )
    parts += _y_axis(ticks, scale, left, plot_w, axis_y)
    for i, group in enumerate(groups):
        start = left + i * slot + slot * 0.1
        for j, s in enumerate(series):
            value = _positive(group.values.get(s.key))
            x, h = start + j * bar_w, value * scale
            parts.append(
                f'<g class="chart-col series-{escape(s.key)}"><title>{escape(group.label)}, '
                f"{escape(s.name)}: {plain_number(value)}</title>"
                f'<rect class="chart-bar" x="{x:.1f}" y="{axis_y - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"/>'
                + (
                    f'<text class="chart-value" x="{x + bar_w / 2:.1f}" y="{axis_y - h - 4:.1f}" '
                    f'text-anchor="middle" font-size="11">{plain_number(value)}</text>'
                    if value and len(groups) <= 16
                    else ""
                )
                + "</g>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text class="chart-tick" x="{left + i * slot + slot / 2:.1f}" y="{axis_y + 15}" '
                f'text-anchor="middle">{escape(_short(group.label))}</text>'
            )
    parts.append(
        f'<text class="chart-axis-label" x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        f"{escape(axis_label)}</text></svg>"
    )
    return _figure(chart_id, title, "".join(parts), table)


def _y_axis(ticks, scale, left, plot_w, axis_y):
    parts = []
    for tick in ticks:
        y = axis_y - tick * scale
        parts.append(f'<line class="chart-grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="chart-tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{plain_number(tick)}</text>"
        )
    parts.append(f'<line class="chart-axis" x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}"/>')
    return parts
