"""Jinja2 environment for the card and report templates (``cards/templates/``).

Templates are files so that wording can be changed without touching code; Markdown templates
are rendered without autoescaping (cards are Markdown), the HTML report with autoescaping on,
so a document's text can never inject markup into the report.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


def _num(v: Any, digits: int = 0) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if digits == 0 and f.is_integer():
        return f"{int(f):,}"
    return f"{f:,.{digits or 3}f}"


def _usd(v: Any) -> str:
    try:
        return f"${float(v):,.4f}" if float(v) < 1 else f"${float(v):,.2f}"
    except (TypeError, ValueError):
        return str(v)


def _pct(num: Any, den: Any) -> str:
    try:
        return f"{100.0 * float(num) / float(den):.1f}%" if float(den) else "–"
    except (TypeError, ValueError):
        return "–"


def _cell(v: Any) -> str:
    """A Markdown table cell: numbers formatted, pipes and newlines escaped."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.3g}"
    if v is None:
        return ""
    text = v if isinstance(v, str) else str(v)
    return text.replace("|", "\\|").replace("\n", " ")


@cache
def environment(html: bool) -> jinja2.Environment:
    """The shared environment (one for Markdown, one for HTML)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(num=_num, usd=_usd, cell=_cell)
    env.globals.update(pct=_pct)
    return env


def render(template: str, **context: Any) -> str:
    """Render one template file by name."""
    return environment(template.endswith(".html.j2")).get_template(template).render(**context)
