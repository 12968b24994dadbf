"""Read a corpus scores folder for the report: per-document rows and token-level trajectories.

The layout is the one the scoring stage writes (:mod:`emocurate.artifacts`): ``data/*.parquet``
with one flat row per document (``doc_id``, the :data:`~emocurate.artifacts.METRIC_KEYS`
columns, ``flags`` with token spans), read through :class:`~emocurate.corpus.rows.CorpusScore`,
and ``tokens/*.parquet`` with :class:`TraceRow` rows (decoded tokens, ``series_names`` and
``series[k][t]``) for some documents. Curated folders add a ``text`` column. Nothing else is
guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from emocurate.artifacts import SCORE_ID, TRACES_DIR, FlagSpan, TraceRow
from emocurate.corpus.rows import CorpusScore
from emocurate.errors import InputError, first_problem

COMPOSITES = ("distress", "valence", "arousal", "calm", "regulation")
TEXT = "text"
"""The document text column: only curated folders made with ``--corpus`` have it."""


@dataclass
class FlagRow:
    """One flag on one document (token span end exclusive)."""

    kind: str
    start: int
    end: int
    severity: float = 0.0
    evidence: str = ""


@dataclass
class DocRow:
    """One scored document: metrics and flags."""

    doc_id: str
    n_tokens: int = 0
    source: str = ""
    dominant: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    flags: list[FlagRow] = field(default_factory=list)
    text: str = ""


@dataclass
class TokenDoc:
    """Token-level trajectories of one document: ``z[e][t]`` for emotion ``emotions[e]``."""

    doc_id: str
    tokens: list[str]
    emotions: list[str]
    z: list[list[float]]
    flags: list[FlagRow] = field(default_factory=list)


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _flag_row(f: FlagSpan) -> FlagRow:
    return FlagRow(f.kind, f.start, f.end, f.severity, f.evidence)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def _read(files: list[Path]) -> pa.Table | None:
    tables = []
    for p in files:
        try:
            tables.append(pq.read_table(p))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{p}: unreadable Parquet file ({exc})") from None
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def read_docs(scores_dir: Path) -> list[DocRow]:
    """Per-document rows of a scores (or curated) folder (``data/*.parquet``)."""
    base = scores_dir / "data"
    table = _read(_files(base)) if base.is_dir() else None
    if table is None:
        return []
    if SCORE_ID not in table.column_names:
        raise InputError(f"{base}: no '{SCORE_ID}' column (not a folder `emocurate score` wrote)")
    with_text = TEXT in table.column_names
    return [
        _doc_row(row, f"{base}: document {row[SCORE_ID]}", with_text) for row in table.to_pylist()
    ]


def _doc_row(row: dict[str, Any], where: str, with_text: bool) -> DocRow:
    """One flat row read through :class:`CorpusScore` (``text`` from a curated folder's column
    when it has one); a row that does not fit is one line naming the file and the field."""
    try:
        score = CorpusScore.from_flat(row)
    except ValidationError as exc:
        loc, msg = first_problem(exc)
        raise InputError(f"{where}: field '{loc}': {msg}") from None
    return DocRow(
        doc_id=score.doc_id,
        n_tokens=score.n_tokens,
        source=score.source,
        dominant=list(score.dominant),
        metrics={k: f for k, v in score.metrics.items() if (f := _finite(v)) is not None},
        flags=[_flag_row(f) for f in score.flags],
        text=str(row[TEXT] or "") if with_text else "",
    )


def read_token_docs(scores_dir: Path) -> list[TokenDoc]:
    """Token-level trajectories of ``tokens/*.parquet`` (empty when the folder has none)."""
    folder = scores_dir / TRACES_DIR
    table = _read(_files(folder)) if folder.is_dir() else None
    if table is None:
        return []
    out: list[TokenDoc] = []
    for i, raw in enumerate(table.to_pylist()):
        try:
            row = TraceRow.model_validate(raw)
        except ValidationError as exc:
            loc, msg = first_problem(exc)
            raise InputError(f"{folder}: trace row {i}: field '{loc}': {msg}") from None
        if not row.tokens:
            continue
        n = len(row.tokens)
        if len(row.series) != len(row.series_names) or any(len(z) != n for z in row.series):
            raise InputError(
                f"{folder}: trace of {row.doc_id}: series do not match series_names x tokens"
            )
        out.append(
            TokenDoc(
                doc_id=row.doc_id,
                tokens=[t.replace("\u2581", " ").replace("\u0120", " ") for t in row.tokens],
                emotions=[n.removeprefix("emotion:") for n in row.series_names],
                z=[[float(v) for v in z] for z in row.series],
                flags=[_flag_row(f) for f in row.flags],
            )
        )
    return out
