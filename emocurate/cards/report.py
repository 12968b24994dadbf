"""The curator's HTML report: one self-contained file that works offline.

A curator decides from pictures and examples: the emotion geometry (are the vectors sane?),
the distributions of the regulation metrics (where do thresholds cut?), the flagged documents,
and per-document token heatmaps with the flagged spans highlighted (is this flag right?).
Figures are inline SVG built by :mod:`emocurate.cards.svg`; there is no JavaScript, no external
CSS and no network access, so the file can be mailed or archived as-is. Every input is
optional: the report renders what exists and lists what is missing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from markupsafe import Markup

from emocurate import __version__
from emocurate.artifacts import (
    CurateManifest,
    ScoreManifest,
    read_evaluation,
    read_transfers,
    read_vectorset_meta,
)
from emocurate.cards import report_sections as sections
from emocurate.cards import svg
from emocurate.cards.geometry import geometry
from emocurate.cards.inputs import dataset_root, summarize_records, summarize_validation
from emocurate.cards.render import render
from emocurate.cards.scores import COMPOSITES, DocRow, FlagRow, TokenDoc, read_docs, read_token_docs
from emocurate.cards.vector_card import geometry_svg
from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes, ensure_dir
from emocurate.records import utc_now

VMAX = 3.0
PALETTE = ["#4a6fa5", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50", "#b7950b"]


def _selected_emotions(doc: TokenDoc, wanted: list[str] | None, k: int) -> list[int]:
    """Rows to show: the requested emotions present in the doc, else the composites (distress,
    valence, arousal, calm) followed by the emotions with the largest |z|, ``k`` rows at most."""
    if wanted:
        rows = [doc.emotions.index(e) for e in wanted if e in doc.emotions]
        if rows:
            return rows[:k]
    first = [doc.emotions.index(c) for c in COMPOSITES if c in doc.emotions]
    peak = [max((abs(v) for v in row), default=0.0) for row in doc.z]
    rest = sorted((i for i in range(len(doc.emotions)) if i not in first), key=lambda i: -peak[i])
    return (first + rest)[:k]


CONTEXT = 24
"""Tokens of context shown around each flagged span in the text view."""
HEAD = 160
"""Tokens shown from the start of a document without flags."""


def excerpt_tokens(n_tokens: int, flags: list[FlagRow]) -> list[int]:
    """Token positions the text view shows: each flagged span with ``CONTEXT`` tokens around it
    (the evidence a curator reads), or the first ``HEAD`` tokens when nothing is flagged.

    Showing every token of every document (one element each, three times) made a 50-document
    report tens of megabytes; the heatmap strip above still shows the whole trajectory.
    """
    keep: set[int] = set()
    for f in flags:
        keep.update(range(max(f.start - CONTEXT, 0), min(f.end + CONTEXT, n_tokens)))
    if not keep:
        keep = set(range(min(HEAD, n_tokens)))
    return sorted(keep)


def _token_spans(doc: TokenDoc, row: int, flags: list[FlagRow], others: list[int]) -> Markup:
    """Excerpts of the document's text, each token tinted by one emotion's z-score, flagged
    tokens outlined, per-token values of the shown emotions on hover."""
    flagged: dict[int, list[str]] = {}
    for f in flags:
        for t in range(max(f.start, 0), min(f.end, len(doc.tokens))):
            flagged.setdefault(t, []).append(f.kind)
    parts = []
    shown = excerpt_tokens(len(doc.tokens), flags)
    prev = -1
    for t in shown:
        tok = doc.tokens[t]
        if t != prev + 1:
            parts.append(Markup("<span class='gap'> … </span>"))
        prev = t
        v = doc.z[row][t]
        tip = ", ".join(f"{doc.emotions[i]} {doc.z[i][t]:+.2f}" for i in others)
        cls = "tok"
        if t in flagged:
            cls += " flagged"
            tip += " | flag: " + ", ".join(flagged[t])
        start = t in flagged and (t - 1) not in flagged
        label = (
            Markup("<span class='flag-label'>{}</span>").format(", ".join(flagged[t]))
            if start
            else ""
        )
        parts.append(
            Markup("{}<span class='{}' style='background:{}' title='{}'>{}</span>").format(
                label, cls, svg.diverging_color(v, VMAX), f"#{t} {tip}", tok
            )
        )
    if prev < len(doc.tokens) - 1:
        parts.append(Markup("<span class='gap'> … </span>"))
    return Markup("").join(parts)


def _heatmap_docs(
    token_docs: list[TokenDoc],
    doc_rows: dict[str, DocRow],
    wanted: list[str] | None,
    max_docs: int,
    k: int,
) -> list[dict[str, Any]]:
    order = sorted(
        token_docs,
        key=lambda d: (-max((f.severity for f in _doc_flags(d, doc_rows)), default=-1.0), d.doc_id),
    )
    out = []
    for doc in order[:max_docs]:
        flags = _doc_flags(doc, doc_rows)
        rows = _selected_emotions(doc, wanted, k)
        strip = svg.heatmap_strip(
            [doc.emotions[i] for i in rows],
            [doc.z[i] for i in rows],
            spans=[(f.start, f.end, f.kind) for f in flags],
            vmax=VMAX,
            width=1000,
        )
        # One text view, tinted by the first row; every shown row's value is on hover.
        views = [
            {"emotion": doc.emotions[rows[0]], "html": _token_spans(doc, rows[0], flags, rows)}
        ]
        out.append(
            {
                "doc_id": doc.doc_id,
                "anchor": _anchor(doc.doc_id),
                "n_tokens": len(doc.tokens),
                "flags": flags,
                "strip": Markup(strip),
                "views": views,
                "emotions": [doc.emotions[i] for i in rows],
            }
        )
    return out


def _doc_flags(doc: TokenDoc, doc_rows: dict[str, DocRow]) -> list[FlagRow]:
    if doc.flags:
        return doc.flags
    row = doc_rows.get(doc.doc_id)
    return row.flags if row else []


def _anchor(doc_id: str) -> str:
    return "doc-" + "".join(c if c.isalnum() else "-" for c in doc_id)


def _metric_figures(
    docs: list[DocRow], marks: dict[str, float] | None = None, limit: int = 12
) -> list[Markup]:
    """One histogram per metric; metrics with a flag threshold come first, the line drawn."""
    marks = marks or {}
    counts: Counter[str] = Counter()
    for d in docs:
        counts.update(d.metrics)
    ranked = [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    names = [n for n in marks if n in counts] + [n for n in ranked if n not in marks]
    figs = []
    for i, name in enumerate(names[: max(limit, len(marks))]):
        vals = [d.metrics[name] for d in docs if name in d.metrics]
        title = name.replace("_", " ") + (
            f" (threshold {marks[name]:.2f})" if name in marks else ""
        )
        figs.append(
            Markup(
                svg.histogram(
                    vals,
                    title=title,
                    color=PALETTE[i % len(PALETTE)],
                    threshold=marks.get(name),
                )
            )
        )
    return figs


def _vectors_section(
    vectors_dir: str | Path | None,
    transfer_dir: str | Path | None,
    inputs: list[tuple[str, str]],
    missing: list[str],
) -> dict[str, Any] | None:
    """The vector set's facts and geometry figure (None, noted as missing, without a set)."""
    vec: dict[str, Any] | None = None
    if vectors_dir is not None:
        meta = read_vectorset_meta(vectors_dir)
        ev = read_evaluation(vectors_dir)
        geo = geometry(vectors_dir, ev)
        inputs.append(("vectors", str(vectors_dir)))
        vec = {
            "meta": meta,
            "figure": Markup(geometry_svg(geo)),
            "geo": geo,
            "n": len(meta.names),
            "accuracy": ev.accuracy if ev is not None else None,
            "top3": ev.top3 if ev is not None else None,
            "evaluation": sections.evaluation(Path(vectors_dir)),
            "transfers": read_transfers(vectors_dir)
            + (read_transfers(transfer_dir) if transfer_dir is not None else []),
        }
    else:
        missing.append("emotion vectors (--vectors): no geometry figure")
    return vec


def _scores_section(
    scores_dir: str | Path | None,
    emotions: list[str] | None,
    max_heatmaps: int,
    max_flagged: int,
    inputs: list[tuple[str, str]],
    missing: list[str],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The corpus section (counts, flags, metric figures, thresholds) and its token heatmaps."""
    scores: dict[str, Any] | None = None
    heatmaps: list[dict[str, Any]] = []
    if scores_dir is not None:
        sdir = Path(scores_dir)
        if not sdir.is_dir():
            raise InputError(f"scores folder not found: {sdir}")
        inputs.append(("scores", str(sdir)))
        docs = read_docs(sdir)
        by_id = {d.doc_id: d for d in docs}
        token_docs = read_token_docs(sdir)
        heatmaps = _heatmap_docs(token_docs, by_id, emotions, max_heatmaps, k=8)
        flagged = sorted(
            (d for d in docs if d.flags), key=lambda d: -max(f.severity for f in d.flags)
        )
        with_heatmap = {h["doc_id"] for h in heatmaps}
        kinds: Counter[str] = Counter(f.kind for d in docs for f in d.flags)
        man = ScoreManifest.read(sdir)
        th = sections.thresholds(man, docs) if man is not None else None
        scores = {
            "n_docs": len(docs),
            "n_flagged": len(flagged),
            "kinds": kinds.most_common(),
            "flagged": flagged[:max_flagged],
            "more": max(0, len(flagged) - max_flagged),
            "with_heatmap": with_heatmap,
            "anchor": _anchor,
            "metrics": _metric_figures(docs, th.per_metric if th else None),
            "thresholds": th,
            "quarantined": man.quarantined if man is not None else None,
            "dominant": Counter(d.dominant[0] for d in docs if d.dominant).most_common(10),
        }
        if not docs:
            missing.append(f"document scores (no Parquet rows in {sdir})")
        if not token_docs:
            missing.append("token-level scores (the scores folder has no token file): no heatmaps")
    else:
        missing.append("corpus scores (--scores): no metric distributions, flags or token heatmaps")
    return scores, heatmaps


def _stage_sections(
    curated_dir: str | Path | None,
    validation_dir: str | Path | None,
    generation_dir: str | Path | None,
    inputs: list[tuple[str, str]],
    missing: list[str],
) -> tuple[Any, Any, Any]:
    """What curation, validation and generation did (each None, noted as missing, when absent)."""
    cur = None
    cur_man = CurateManifest.read(curated_dir) if curated_dir is not None else None
    if cur_man is not None:
        cur = sections.curation(cur_man)
        inputs.append(("curated", str(curated_dir)))
    else:
        missing.append("curation (--curated): what each policy rule did")

    val = None
    if validation_dir is not None:
        val = summarize_validation(validation_dir)
        inputs.append(("validation", str(validation_dir)))
    else:
        missing.append("validation funnel (--validation)")
    gen = None
    if generation_dir is not None:
        gen = summarize_records(dataset_root(generation_dir))
        inputs.append(("generation", str(generation_dir)))
    else:
        missing.append("generation summary (--generation)")
    return cur, val, gen


def write_report(
    out_path: str | Path,
    *,
    vectors_dir: str | Path | None = None,
    scores_dir: str | Path | None = None,
    validation_dir: str | Path | None = None,
    generation_dir: str | Path | None = None,
    curated_dir: str | Path | None = None,
    transfer_dir: str | Path | None = None,
    title: str = "emocurate report",
    emotions: list[str] | None = None,
    max_heatmaps: int = 8,
    max_flagged: int = 200,
) -> Path:
    """Write the self-contained HTML report to ``out_path`` and return it.

    Args:
        out_path: the ``.html`` file to write (parent folders are created).
        vectors_dir: a VectorSet folder (geometry figure and vector facts).
        scores_dir: a corpus scores folder (metric distributions, flagged documents, heatmaps).
        validation_dir: a validation folder (funnel).
        generation_dir: a generation folder (what was generated, tokens and cost).
        curated_dir: a curate folder (what each rule did, the guardrail's decision).
        transfer_dir: another folder with ``transfer/*.json`` (the pipeline's evaluate stage),
            listed with the set's own saved transfer evaluations.
        title: the page title.
        emotions: emotions to show in the token heatmaps (default: each document's strongest).
        max_heatmaps: at most this many documents get token heatmaps (flagged ones first).
        max_flagged: at most this many rows in the flagged-documents table.
    """
    out = Path(out_path)
    ensure_dir(out.parent)
    missing: list[str] = []
    inputs: list[tuple[str, str]] = []

    vec = _vectors_section(vectors_dir, transfer_dir, inputs, missing)
    scores, heatmaps = _scores_section(
        scores_dir, emotions, max_heatmaps, max_flagged, inputs, missing
    )
    cur, val, gen = _stage_sections(curated_dir, validation_dir, generation_dir, inputs, missing)

    html = render(
        "report.html.j2",
        title=title,
        version=__version__,
        created=utc_now(),
        inputs=inputs,
        missing=missing,
        vec=vec,
        scores=scores,
        heatmaps=heatmaps,
        val=val,
        gen=gen,
        cur=cur,
        legend=Markup(svg.color_legend(VMAX)),
    )
    atomic_write_bytes(out, html.encode("utf-8"))
    return out
