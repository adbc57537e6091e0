"""Our templates and HTML-emitting Python hold no inline script, style or event handler (CSP).

The Content Security Policy (config/settings.py) allows scripts and styles from our static files
only, so any of these would be refused by the browser: an inline <script> (one without src; a
json_script data block is fine), a <style> block, a style="..." attribute (HTML or SVG), an
on*="..." event handler or a javascript: URL. Behaviour goes in static/js (data attributes,
CSSOM), looks in static/css (classes, <progress>/<meter>).

Scanned: every template of ours (templates/, and each of our apps' templates/ folders), except
templates/emails/, which mail clients read (they drop <style> and never load stylesheets, so
e-mails must use style attributes) and no browser renders under our policy. Django admin's and
third-party templates are not ours. Also scanned: the Python modules of our apps that build
HTML (format_html, mark_safe), and the dashboard charts as rendered.
"""

import re
from pathlib import Path

import pytest
from django.conf import settings

from leads import charts

ROOT = Path(settings.BASE_DIR)
APPS = ["accounts", "leads", "config"]
EXCLUDED = [ROOT / "templates" / "emails"]

TAG = re.compile(r"<(?P<name>[a-zA-Z][a-zA-Z0-9:-]*)\b(?P<attrs>[^>]*)>", re.S)
ATTRIBUTE_RULES = [
    (re.compile(r"(?:^|\s)style\s*=", re.I), "style attribute (move it to a class in static/css)"),
    (re.compile(r"(?:^|\s)on[a-z]+\s*=", re.I), "inline event handler (bind it in static/js)"),
    (re.compile(r"=\s*[\"']?\s*javascript:", re.I), "javascript: URL (bind a handler in static/js)"),
]
# Only data blocks may be inline <script>s: the browser never runs them.
DATA_SCRIPT = re.compile(r"""type\s*=\s*["']?application/(?:ld\+)?json""", re.I)


TEMPLATE_COMMENT = re.compile(r"\{#.*?#\}|\{%\s*comment\b.*?%\}.*?\{%\s*endcomment\s*%\}", re.S)


def _blank(match):
    """A template comment never reaches the browser: blank it out, keeping its line breaks."""
    return re.sub(r"[^\n]", " ", match.group(0))


def inline_code(text):
    """[(line, what)] for every inline script, style block, style attribute or handler in text."""
    found = []
    text = TEMPLATE_COMMENT.sub(_blank, text)
    for match in TAG.finditer(text):
        name, attrs = match["name"].lower(), match["attrs"]
        line = text.count("\n", 0, match.start()) + 1
        if (
            name == "script"
            and not re.search(r"(?:^|\s)src\s*=", attrs, re.I)
            and not DATA_SCRIPT.search(attrs)
        ):
            found.append((line, "inline <script> (move it to a file in static/js)"))
        elif name == "style":
            found.append((line, "<style> block (move it to static/css)"))
        for rule, what in ATTRIBUTE_RULES:
            if rule.search(attrs):
                found.append((line, what))
    return found


def project_templates():
    folders = [ROOT / "templates", *(ROOT / app / "templates" for app in APPS)]
    return sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.rglob("*")
        if path.suffix in {".html", ".svg", ".txt"}
        and path.is_file()
        and not any(path.is_relative_to(excluded) for excluded in EXCLUDED)
    )


def html_emitting_modules():
    modules = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "tests" in path.relative_to(ROOT).parts or "migrations" in path.parts:
                continue
            if re.search(r"\b(format_html|format_html_join|mark_safe|SafeString)\b", path.read_text()):
                modules.append(path)
    return modules


def _report(path, found):
    return "\n".join(f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in found)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<p>\n<script>alert(1)</script>", [(2, "inline <script>")]),
        ('<script src="/static/js/board.js" defer></script>', []),
        ('<script id="d" type="application/json">{"a": 1}</script>', []),
        ("<style>p { color: red }</style>", [(1, "<style> block")]),
        ('<div class="x"\n     style="width: 40%">', [(1, "style attribute")]),
        ('<rect x="1" style="fill:red"/>', [(1, "style attribute")]),
        ('<button onclick="go()">', [(1, "inline event handler")]),
        ('<a href="javascript:void(0)">', [(1, "javascript: URL")]),
        ('<a data-style="x" href="/board/" class="onward">', []),
        (
            "{# no <style> here #}\n{% comment %}\n<script>x()</script>{% endcomment %}\n<style>",
            [(4, "<style> block")],
        ),
    ],
)
def test_the_scanner_finds_what_the_policy_refuses(text, expected):
    found = [(line, what.split(" (")[0]) for line, what in inline_code(text)]
    assert found == expected


def test_project_templates_have_no_inline_script_style_or_handlers():
    templates = project_templates()
    assert len(templates) > 30  # the scan really walked our template folders
    problems = [_report(path, found) for path in templates if (found := inline_code(path.read_text()))]
    assert not problems, "Inline code the Content Security Policy refuses:\n" + "\n".join(problems)


def test_python_that_builds_html_has_no_inline_script_style_or_handlers():
    modules = html_emitting_modules()
    assert ROOT / "leads" / "charts.py" in modules
    problems = [_report(path, found) for path in modules if (found := inline_code(path.read_text()))]
    assert not problems, "Inline code the Content Security Policy refuses:\n" + "\n".join(problems)


def test_rendered_charts_have_no_inline_styles():
    bars = [charts.Bar(label="Won", value=3, css="kind-won"), charts.Bar(label="Lost", value=1)]
    groups = [charts.Group(label="Web", values={"won": 2, "lost": 1})]
    series = [charts.Series(key="won", name="Won"), charts.Series(key="lost", name="Lost")]
    rendered = [
        charts.bar_chart(chart_id="bars", title="By stage", bars=bars),
        charts.bar_chart(chart_id="empty", title="Nothing", bars=[]),
        charts.column_chart(chart_id="columns", title="Per week", bars=bars),
        charts.grouped_column_chart(chart_id="groups", title="By source", groups=groups, series=series),
    ]
    for html in rendered:
        assert "<svg" in html
        assert inline_code(str(html)) == [], html
