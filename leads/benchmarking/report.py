"""manage.py bench's output: the table people read and the JSON file machines compare."""

import json
from pathlib import Path

COLUMNS = [
    ("case", 40, "<"),
    ("ours p50", 10, ">"),
    ("p95", 9, ">"),
    ("queries", 8, ">"),
    ("raw p50", 9, ">"),
    ("ours/raw", 11, ">"),
    ("peer p50", 9, ">"),
    ("peer q", 7, ">"),
    ("ours/peer", 10, ">"),
]


def _ms(value):
    return "—" if value is None else f"{value:,.1f}"


def _times(value):
    if value is None:
        return "—"
    # Two significant digits below 0.1 (0.0035×: ours takes 1/286 of the peer's time).
    return f"{value:.2g}×" if value < 0.1 else f"{value:,.2f}×"


def row_cells(result):
    ours, raw, peer = result["ours"], result["raw"], result["peer"]
    return [
        result["case"],
        _ms(ours["p50_ms"]),
        _ms(ours["p95_ms"]),
        str(ours["queries"]),
        _ms(raw["p50_ms"]),
        _times(result["ours_over_raw"]),
        _ms(peer["p50_ms"]) if peer else "—",
        str(peer["queries"]) if peer else "—",
        _times(result["ours_over_peer"]),
    ]


def format_row(cells):
    return "".join(
        f"{cell[: width - 1] if align == '<' else cell:{align}{width}}"
        for cell, (_, width, align) in zip(cells, COLUMNS, strict=True)
    )


def table(results):
    lines = [format_row([name for name, _, _ in COLUMNS]), "-" * sum(width for _, width, _ in COLUMNS)]
    group = None
    for result in results:
        if group is not None and result["group"] != group:
            lines.append("")
        group = result["group"]
        lines.append(format_row(row_cells(result)))
    return "\n".join(lines)


def markdown_table(results):
    """The same figures as a Markdown table, for the README."""
    head = [name for name, _, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row_cells(result)) + " |" for result in results]
    return "\n".join(lines)


def export_lines(results):
    lines = []
    for result in results:
        if "rows_per_second" in result["ours"]:
            ours, raw = result["ours"], result["raw"]
            lines.append(
                f"{result['case']}: ours {ours['rows']:,} rows, {ours['rows_per_second']:,} rows/s; "
                f"COPY … TO STDOUT {raw['rows']:,} rows, {raw['rows_per_second']:,} rows/s "
                f"(ours = {ours['rows_per_second'] / raw['rows_per_second']:.1%} of COPY)"
                if raw["rows_per_second"]
                else f"{result['case']}: no rows to export"
            )
    return lines


def search_index_lines(results, external=None):
    """The search cases' limit with and without the trigram index (bitmap scans off for the second)."""
    lines = []
    for result in results:
        without = result.get("raw_without_trigram_index")
        if without is None:
            continue
        lines.append(
            f"{result['case']:<44} raw {_ms(result['raw']['p50_ms']):>9} ms   without the index "
            f"{_ms(without['p50_ms']):>9} ms   ({_times(_ratio(without['p50_ms'], result['raw']['p50_ms']))})"
            f"   matches {result['ours'].get('matched', '?')}"
        )
    if external:
        lines.append(external)
    return lines


def _ratio(a, b):
    return round(a / b, 4) if b else None


def write_json(path, report):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path
