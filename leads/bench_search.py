"""Lead search timed as SQL, with and without the trigram indexes, for the bench commands (PostgreSQL).

measure_search() runs, for each term, the two queries the API list runs for `?query=term`: its
page (ORDER BY -created_at, -id LIMIT 20) and the exact COUNT of matches, compiled by Django from
leads.search, so what is timed is what the application sends. "Without the indexes" is the same
SQL with `SET enable_bitmapscan = off`: a GIN index can only be read through a bitmap scan, so
this is the plan PostgreSQL would choose if the trigram indexes did not exist (the created_at
btree stays usable), measured in the same run and without the ACCESS EXCLUSIVE lock a
DROP INDEX would take on leads_lead.
"""

import json
import statistics
import time

from leads.filters import search_leads
from leads.models import Lead

PAGE_SIZE = 20

# Terms for a data set like `manage.py bench`'s (realistic names, e-mails, +1 phones, companies):
# e-mail, phone and name fragments of a few matches, a common name (a few % of all leads),
# and a two-letter word (matched as a prefix, see leads.search).
DEFAULT_TERMS = ("nguyen42", "555 01", "dmitri okonkwo", "okonkwo", "mary", "johnson", "smith", "li", "j")


def _percentile(sorted_samples, fraction):
    return sorted_samples[min(len(sorted_samples) - 1, round(fraction * (len(sorted_samples) - 1)))]


def _time(cursor, statements, runs, warmup):
    """Median and p95 (ms) of running `statements` [(sql, params)] in sequence, and the last rows."""
    for _ in range(warmup):
        for sql, params in statements:
            cursor.execute(sql, params)
            cursor.fetchall()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        for sql, params in statements:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median": statistics.median(samples), "p95": _percentile(samples, 0.95)}, rows


def _index_scans(cursor, sql, params):
    """The indexes the plan of `sql` reads (EXPLAIN without ANALYZE: nothing is run)."""
    cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if "Index Name" in node and node["Index Name"] not in found:
            found.append(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return sorted(found)


def search_queries(term, queryset=None):
    """[(sql, params)] of the API list's page and COUNT for `term`, as Django compiles them."""
    if queryset is None:
        # What visible_leads() returns for a manager: every live lead, with the card's joins.
        queryset = Lead.objects.live().select_related("stage", "source", "owner")
    matching = search_leads(queryset, term).order_by("-created_at", "-id")
    page = matching[:PAGE_SIZE].query.sql_with_params()
    count_sql, count_params = matching.values("pk").order_by().query.sql_with_params()
    count = (f"SELECT COUNT(*) FROM ({count_sql}) AS matching", count_params)
    return [page, count]


def measure_search(cursor, terms=DEFAULT_TERMS, runs=15, warmup=2, queryset=None, baseline_runs=None):
    """For each term: matches, share of live leads, page + COUNT timings with and without the indexes.

    `cursor` is a cursor on the PostgreSQL database to measure (django.db.connection.cursor()).
    Returns one dict a term; times are milliseconds (median and p95 over `runs`, or over
    `baseline_runs` without the indexes: seconds a run there), "ratio" is the median without the
    indexes over the median with them; "page_indexes"/"count_indexes" name what the plans read.
    """
    runs, warmup = max(runs, 1), max(warmup, 0)
    baseline_runs = runs if baseline_runs is None else max(baseline_runs, 1)
    cursor.execute("SELECT count(*) FROM leads_lead WHERE deleted_at IS NULL")
    live = cursor.fetchone()[0] or 1
    results = []
    for term in terms:
        statements = search_queries(term, queryset)
        indexed, rows = _time(cursor, statements, runs, warmup)
        matches = rows[0][0]
        page_indexes = _index_scans(cursor, *statements[0])
        count_indexes = _index_scans(cursor, *statements[1])
        cursor.execute("SET enable_bitmapscan = off")
        try:
            unindexed, _ = _time(cursor, statements, baseline_runs, min(warmup, 1))
        finally:
            cursor.execute("RESET enable_bitmapscan")
        results.append(
            {
                "term": term,
                "matches": matches,
                "share": matches / live,
                "indexed": indexed,
                "unindexed": unindexed,
                "ratio": unindexed["median"] / max(indexed["median"], 1e-6),
                "page_indexes": page_indexes,
                "count_indexes": count_indexes,
            }
        )
    return results


def format_search_table(results):
    """The results as lines of a table, for a command's output."""
    lines = [
        f"{'search term':<16}{'matches':>10}{'share':>8}   {'indexed median':>14}{'p95':>8}"
        f"   {'no index median':>15}{'p95':>9}{'ratio':>9}"
    ]
    for r in results:
        lines.append(
            f"{r['term']:<16}{r['matches']:>10,}{r['share']:>8.2%}   {r['indexed']['median']:>14.1f}"
            f"{r['indexed']['p95']:>8.1f}   {r['unindexed']['median']:>15.1f}{r['unindexed']['p95']:>9.1f}"
            f"{r['ratio']:>8.0f}×"
        )
    lines.append("(ms for the API list's page query + exact COUNT; no index = SET enable_bitmapscan = off)")
    return lines
