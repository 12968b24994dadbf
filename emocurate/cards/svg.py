"""Hand-built SVG figures (scatter, histogram, heatmap strip).

Cards and the HTML report must work offline and without plotting libraries (matplotlib is not a
dependency), so figures are small SVG documents written by hand. Every figure is a string that
can be inlined in HTML or saved as a ``.svg`` file; every element that matters carries a CSS
class (``point``, ``bar``, ``cell``, ``flag-span``) so that tests can find it in the DOM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family='system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif'"


@dataclass(frozen=True)
class Point:
    """One labelled point of a scatter plot; ``value`` colours it (e.g. valence in [-1, 1])."""

    x: float
    y: float
    label: str
    value: float | None = None


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def diverging_color(v: float, vmax: float = 1.0) -> str:
    """Blue (negative) – white – red (positive) colour for ``v`` scaled by ``vmax``.

    A diverging map is what z-scores and valence need: zero must look neutral.
    """
    t = 0.0 if vmax <= 0 or not math.isfinite(v) else max(-1.0, min(1.0, v / vmax))
    if t >= 0:
        r, g, b = 255, round(255 - 170 * t), round(255 - 190 * t)
    else:
        r, g, b = round(255 + 190 * t), round(255 + 120 * t), 255
    return f"#{r:02x}{g:02x}{b:02x}"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def _tick_label(v: float) -> str:
    return f"{v:.3g}"


def scatter(
    points: Sequence[Point],
    *,
    title: str = "",
    x_label: str = "PC1",
    y_label: str = "PC2",
    width: int = 640,
    height: int = 480,
) -> str:
    """A labelled scatter plot (used for the emotion geometry, PC1 vs PC2)."""
    m_left, m_right, m_top, m_bottom = 56, 80, 34 if title else 14, 44
    pw, ph = width - m_left - m_right, height - m_top - m_bottom
    xs = [p.x for p in points] or [0.0]
    ys = [p.y for p in points] or [0.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    padx = (x1 - x0) * 0.08 or 1.0
    pady = (y1 - y0) * 0.08 or 1.0
    x0, x1, y0, y1 = x0 - padx, x1 + padx, y0 - pady, y1 + pady

    def sx(v: float) -> float:
        return m_left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return m_top + ph - (v - y0) / (y1 - y0) * ph

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='figure scatter' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' role='img' {FONT} font-size='11'>",
        f"<title>{escape(title or 'scatter')}</title>",
        f"<rect x='{m_left}' y='{m_top}' width='{pw}' height='{ph}' fill='#fafafa' stroke='#ccc'/>",
    ]
    if title:
        parts.append(
            f"<text x='{width / 2:.1f}' y='20' text-anchor='middle' font-size='14' font-weight='600'>{escape(title)}</text>"
        )
    for t in _nice_ticks(x0, x1):
        X = sx(t)
        parts.append(
            f"<line x1='{_fmt(X)}' y1='{m_top}' x2='{_fmt(X)}' y2='{m_top + ph}' stroke='#eee'/>"
        )
        parts.append(
            f"<text x='{_fmt(X)}' y='{m_top + ph + 14}' text-anchor='middle' fill='#555'>{_tick_label(t)}</text>"
        )
    for t in _nice_ticks(y0, y1):
        Y = sy(t)
        parts.append(
            f"<line x1='{m_left}' y1='{_fmt(Y)}' x2='{m_left + pw}' y2='{_fmt(Y)}' stroke='#eee'/>"
        )
        parts.append(
            f"<text x='{m_left - 6}' y='{_fmt(Y + 4)}' text-anchor='end' fill='#555'>{_tick_label(t)}</text>"
        )
    if x0 < 0 < x1:
        parts.append(
            f"<line x1='{_fmt(sx(0))}' y1='{m_top}' x2='{_fmt(sx(0))}' y2='{m_top + ph}' stroke='#bbb' stroke-dasharray='3,3'/>"
        )
    if y0 < 0 < y1:
        parts.append(
            f"<line x1='{m_left}' y1='{_fmt(sy(0))}' x2='{m_left + pw}' y2='{_fmt(sy(0))}' stroke='#bbb' stroke-dasharray='3,3'/>"
        )
    parts.append(
        f"<text x='{m_left + pw / 2:.1f}' y='{height - 8}' text-anchor='middle' font-size='12'>{escape(x_label)}</text>"
    )
    parts.append(
        f"<text transform='translate(14,{m_top + ph / 2:.1f}) rotate(-90)' text-anchor='middle' font-size='12'>{escape(y_label)}</text>"
    )
    for p in points:
        X, Y = sx(p.x), sy(p.y)
        color = diverging_color(p.value) if p.value is not None else "#4a6fa5"
        parts.append(
            f"<g class='point' data-label='{escape(p.label)}'><circle cx='{_fmt(X)}' cy='{_fmt(Y)}' r='5' "
            f"fill='{color}' stroke='#333' stroke-width='0.8'><title>{escape(p.label)} ({p.x:.2f}, {p.y:.2f})</title></circle>"
            f"<text x='{_fmt(X + 7)}' y='{_fmt(Y + 4)}' fill='#222'>{escape(p.label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    values: Sequence[float],
    *,
    title: str = "",
    bins: int = 20,
    width: int = 300,
    height: int = 180,
    color: str = "#4a6fa5",
    threshold: float | None = None,
) -> str:
    """A histogram of one metric; ``threshold`` draws a dashed marker (e.g. a policy cut)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    m_left, m_right, m_top, m_bottom = 36, 10, 26, 30
    pw, ph = width - m_left - m_right, height - m_top - m_bottom
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='figure histogram' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' {FONT} font-size='10'>",
        f"<title>{escape(title or 'histogram')}</title>",
        f"<text x='{width / 2:.1f}' y='15' text-anchor='middle' font-size='12' font-weight='600'>{escape(title)}</text>",
        f"<rect x='{m_left}' y='{m_top}' width='{pw}' height='{ph}' fill='#fafafa' stroke='#ddd'/>",
    ]
    if not vals:
        parts.append(
            f"<text x='{width / 2:.1f}' y='{m_top + ph / 2:.1f}' text-anchor='middle' fill='#888'>no values</text></svg>"
        )
        return "".join(parts)
    lo, hi = min(vals), max(vals)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    cmax = max(counts)
    bw = pw / bins
    for i, c in enumerate(counts):
        h = ph * c / cmax if cmax else 0
        x = m_left + i * bw
        a, b = lo + i * (hi - lo) / bins, lo + (i + 1) * (hi - lo) / bins
        parts.append(
            f"<rect class='bar' x='{_fmt(x + 0.5)}' y='{_fmt(m_top + ph - h)}' width='{_fmt(max(bw - 1, 0.5))}' "
            f"height='{_fmt(h)}' fill='{color}'><title>{a:.3g} to {b:.3g}: {c}</title></rect>"
        )
    parts.append(
        f"<text x='{m_left}' y='{height - 14}' text-anchor='start' fill='#555'>{_tick_label(lo)}</text>"
    )
    parts.append(
        f"<text x='{m_left + pw}' y='{height - 14}' text-anchor='end' fill='#555'>{_tick_label(hi)}</text>"
    )
    parts.append(
        f"<text x='{m_left - 4}' y='{m_top + 8}' text-anchor='end' fill='#555'>{cmax}</text>"
    )
    parts.append(
        f"<text x='{m_left + pw / 2:.1f}' y='{height - 4}' text-anchor='middle' fill='#777'>n = {len(vals)}</text>"
    )
    if threshold is not None and lo <= threshold <= hi:
        X = m_left + (threshold - lo) / (hi - lo) * pw
        parts.append(
            f"<line x1='{_fmt(X)}' y1='{m_top}' x2='{_fmt(X)}' y2='{m_top + ph}' stroke='#c0392b' stroke-dasharray='4,3'/>"
        )
    parts.append("</svg>")
    return "".join(parts)


LEVELS = 16
"""Colour steps per sign in the heatmap images (33 colours in all: compresses well)."""


def png_indexed(pixels: Sequence[Sequence[int]], palette: Sequence[tuple[int, int, int]]) -> bytes:
    """A palette PNG of ``pixels`` (rows of palette indices), written with zlib alone."""
    import struct
    import zlib

    h = len(pixels)
    w = len(pixels[0]) if h else 0
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    plte = bytes(c for rgb in palette for c in rgb)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", plte)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _palette(vmax: float) -> list[tuple[int, int, int]]:
    out = []
    for k in range(-LEVELS, LEVELS + 1):
        c = diverging_color(vmax * k / LEVELS, vmax)
        out.append((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)))
    return out


def _level(v: float, vmax: float) -> int:
    t = 0.0 if vmax <= 0 or not math.isfinite(v) else max(-1.0, min(1.0, v / vmax))
    return round(t * LEVELS) + LEVELS


def heatmap_strip(
    rows: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    spans: Sequence[tuple[int, int, str]] = (),
    vmax: float = 3.0,
    width: int = 1000,
    row_height: int = 16,
    title: str = "",
) -> str:
    """Emotions (rows) by token position (columns), coloured by z-score; flagged spans boxed.

    The cells are one embedded PNG (one pixel per token and emotion, scaled without smoothing),
    so a 2,000-token document costs a few kilobytes instead of one SVG element per cell.
    ``spans`` are ``(start, end, label)`` token ranges (end exclusive) drawn as outlined bands
    across all rows, so a curator sees where the flag sits on the trajectory.
    """
    import base64

    n_tok = max((len(r) for r in values), default=0)
    m_left, m_top = 110, 22 if title else 6
    m_bottom = 22
    pw = width - m_left - 10
    height = m_top + row_height * len(rows) + m_bottom
    cw = pw / max(n_tok, 1)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='figure heatmap' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' {FONT} font-size='10' shape-rendering='crispEdges'>",
        f"<title>{escape(title or 'token heatmap')}</title>",
    ]
    if title:
        parts.append(
            f"<text x='{m_left}' y='14' font-size='11' font-weight='600'>{escape(title)}</text>"
        )
    for r, name in enumerate(rows):
        y = m_top + r * row_height
        parts.append(
            f"<text x='{m_left - 6}' y='{y + row_height - 4}' text-anchor='end' fill='#333'>{escape(name)}</text>"
        )
    if n_tok and rows:
        pixels = [
            [_level(row[t], vmax) if t < len(row) else LEVELS for t in range(n_tok)]
            for row in values
        ]
        data = base64.b64encode(png_indexed(pixels, _palette(vmax))).decode("ascii")
        parts.append(
            f"<image class='cells' x='{m_left}' y='{m_top}' width='{_fmt(pw)}' "
            f"height='{row_height * len(rows)}' preserveAspectRatio='none' "
            f"style='image-rendering:pixelated' href='data:image/png;base64,{data}'/>"
        )
    y_end = m_top + row_height * len(rows)
    for start, end, label in spans:
        x = m_left + start * cw
        w = max((end - start) * cw, 2.0)
        parts.append(
            f"<rect class='flag-span' x='{_fmt(x)}' y='{m_top - 2}' width='{_fmt(w)}' height='{y_end - m_top + 3}' "
            f"fill='none' stroke='#111' stroke-width='1.5'><title>{escape(label)} tokens {start}–{end}</title></rect>"
        )
    parts.append(f"<text x='{m_left}' y='{height - 6}' fill='#666'>token 0</text>")
    parts.append(
        f"<text x='{m_left + pw}' y='{height - 6}' text-anchor='end' fill='#666'>token {n_tok}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def color_legend(vmax: float = 3.0, width: int = 240, label: str = "z-score") -> str:
    """A small horizontal legend for :func:`diverging_color`."""
    steps = 24
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='legend' width='{width}' height='34' {FONT} font-size='10'>"
    ]
    w = (width - 20) / steps
    for i in range(steps):
        v = -vmax + 2 * vmax * (i + 0.5) / steps
        parts.append(
            f"<rect x='{10 + i * w:.1f}' y='4' width='{w + 0.3:.2f}' height='12' fill='{diverging_color(v, vmax)}'/>"
        )
    parts.append(
        f"<text x='10' y='28'>{-vmax:g}</text><text x='{width / 2:.0f}' y='28' text-anchor='middle'>0 ({escape(label)})</text>"
    )
    parts.append(f"<text x='{width - 10}' y='28' text-anchor='end'>+{vmax:g}</text></svg>")
    return "".join(parts)


LINE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def line_chart(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    title: str = "",
    x_label: str = "",
    y_range: tuple[float, float] = (0.0, 1.0),
    references: dict[str, float] | None = None,
    width: int = 560,
    height: int = 300,
) -> str:
    """Several named series over one x axis (e.g. metrics per layer), with dashed reference
    lines (e.g. chance, a target); each series is a ``polyline`` with class ``series``."""
    left, right, top, bottom = 44, 150, 28, 36
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = min(x), max(x)
    y0, y1 = y_range

    def px(v: float) -> float:
        return left + (v - x0) / ((x1 - x0) or 1) * pw

    def py(v: float) -> float:
        return top + (1 - (min(max(v, y0), y1) - y0) / ((y1 - y0) or 1)) * ph

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' {FONT} font-size='11'>",
        f"<text x='{left}' y='16' font-size='13'>{escape(title)}</text>",
        f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>",
    ]
    for t in _nice_ticks(y0, y1):
        parts.append(
            f"<line x1='{left}' x2='{left + pw}' y1='{_fmt(py(t))}' y2='{_fmt(py(t))}' "
            "stroke='#eee'/>"
            f"<text x='{left - 4}' y='{_fmt(py(t) + 4)}' text-anchor='end'>{_tick_label(t)}</text>"
        )
    for t in _nice_ticks(x0, x1):
        parts.append(
            f"<text x='{_fmt(px(t))}' y='{top + ph + 14}' text-anchor='middle'>"
            f"{_tick_label(t)}</text>"
        )
    parts.append(
        f"<text x='{left + pw / 2}' y='{height - 4}' text-anchor='middle'>{escape(x_label)}</text>"
    )
    for i, (name, value) in enumerate((references or {}).items()):
        parts.append(
            f"<line class='reference' x1='{left}' x2='{left + pw}' y1='{_fmt(py(value))}' "
            f"y2='{_fmt(py(value))}' stroke='#777' stroke-dasharray='4 3'/>"
            f"<text x='{left + pw + 6}' y='{_fmt(py(value) + 4 + 0 * i)}' fill='#777'>"
            f"{escape(name)}</text>"
        )
    for i, (name, ys) in enumerate(series.items()):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        pts = " ".join(
            f"{_fmt(px(a))},{_fmt(py(b))}" for a, b in zip(x, ys, strict=True) if not math.isnan(b)
        )
        parts.append(
            f"<polyline class='series' points='{pts}' fill='none' stroke='{color}' "
            "stroke-width='1.8'/>"
        )
        ly = top + 12 + 16 * i
        parts.append(
            f"<line x1='{left + pw + 6}' x2='{left + pw + 22}' y1='{ly - 4}' y2='{ly - 4}' "
            f"stroke='{color}' stroke-width='2'/>"
            f"<text x='{left + pw + 26}' y='{ly}'>{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
