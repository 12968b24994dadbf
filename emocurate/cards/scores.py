"""Read a corpus scores folder for the report: per-document rows and token-level trajectories.

The scores folder is written by the corpus stage: ``data/*.parquet`` with one row per document
(metric columns, or a ``metrics`` mapping, plus ``flags`` with token spans) and, for some
documents, a token-level file with decoded tokens and smoothed z-scores per emotion. The exact
column layout of the token file is normalised here (``z`` as emotions×tokens or tokens×emotions,
or one list column per emotion) so the report survives format changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from emocurate.errors import InputError

ID_COLUMNS = ("doc_id", "id", "document_id")
NOT_METRICS = {
    "n_tokens",
    "n_chars",
    "n_windows",
    "n_flags",
    "shard",
    "row",
    "position",
    "index",
    "start",
    "end",
    "is_dialogue",
}
NOT_METRIC_PREFIXES = ("mean__", "p95__")  # per-emotion profile columns, not regulation metrics
COMPOSITES = ("distress", "valence", "arousal", "calm", "regulation")
TOKEN_DIRS = ("tokens", "token_scores", "trajectories", "token")
Z_COLUMNS = ("series", "z", "scores", "values", "zscores", "smoothed")


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


def _flags(value: Any) -> list[FlagRow]:
    out: list[FlagRow] = []
    for f in value or []:
        if not isinstance(f, dict):
            continue
        try:
            out.append(
                FlagRow(
                    kind=str(f.get("kind") or f.get("name") or "flag"),
                    start=int(f.get("start") or 0),
                    end=int(f.get("end") or 0),
                    severity=float(f.get("severity") or 0.0),
                    evidence=str(f.get("evidence") or f.get("reason") or ""),
                )
            )
        except (TypeError, ValueError):
            continue
    return out


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
    """Per-document rows of a scores folder (``data/*.parquet``)."""
    base = scores_dir / "data" if (scores_dir / "data").is_dir() else scores_dir
    table = _read(_files(base))
    if table is None:
        return []
    id_col = next((c for c in ID_COLUMNS if c in table.column_names), None)
    docs: list[DocRow] = []
    for i, row in enumerate(table.to_pylist()):
        metrics: dict[str, float] = {}
        nested = row.get("metrics")
        if isinstance(nested, str) and nested.startswith("{"):
            try:
                nested = json.loads(nested)
            except json.JSONDecodeError:
                nested = None
        if isinstance(nested, dict):
            metrics.update({k: f for k, v in nested.items() if (f := _finite(v)) is not None})
        for k, v in row.items():
            if k in NOT_METRICS or k in metrics or k == id_col or k.startswith(NOT_METRIC_PREFIXES):
                continue
            f = _finite(v)
            if f is not None:
                metrics[k] = f
        dominant = row.get("dominant") or []
        docs.append(
            DocRow(
                doc_id=str(row.get(id_col) if id_col else i),
                n_tokens=int(row.get("n_tokens") or 0),
                source=str(row.get("source") or ""),
                dominant=[str(d) for d in dominant]
                if isinstance(dominant, list)
                else [str(dominant)],
                metrics=metrics,
                flags=_flags(row.get("flags")),
                text=str(row.get("text") or row.get("snippet") or ""),
            )
        )
    return docs


def _token_files(scores_dir: Path) -> list[Path]:
    for name in TOKEN_DIRS:
        d = scores_dir / name
        if d.is_dir() and _files(d):
            return _files(d)
    return sorted(p for p in scores_dir.glob("*token*.parquet") if not p.name.startswith("."))


def _matrix(row: dict[str, Any], emotions: list[str], n_tok: int) -> list[list[float]] | None:
    for col in Z_COLUMNS:
        z = row.get(col)
        if isinstance(z, list) and z and isinstance(z[0], list):
            if len(z) == len(emotions) and all(len(r) == n_tok for r in z):
                return [[float(v) if v is not None else 0.0 for v in r] for r in z]
            if len(z) == n_tok and all(len(r) == len(emotions) for r in z):
                return [[float(z[t][e] or 0.0) for t in range(n_tok)] for e in range(len(emotions))]
        if isinstance(z, dict):
            return [[float(v or 0.0) for v in (z.get(e) or [0.0] * n_tok)] for e in emotions]
    return None


def read_token_docs(scores_dir: Path) -> list[TokenDoc]:
    """Token-level trajectories (empty when the scores folder has none)."""
    table = _read(_token_files(scores_dir))
    if table is None:
        return []
    out: list[TokenDoc] = []
    for row in table.to_pylist():
        tokens = row.get("tokens") or row.get("token_strs") or []
        if not isinstance(tokens, list) or not tokens:
            continue
        tokens = [str(t).replace("\u2581", " ").replace("\u0120", " ") for t in tokens]
        emotions = row.get("series_names") or row.get("emotions") or row.get("names")
        if not isinstance(emotions, list):
            emotions = [c[2:] for c in row if c.startswith("z_")]
            z = [[float(v or 0.0) for v in row[f"z_{e}"]] for e in emotions]
        else:
            emotions = [str(e).removeprefix("emotion:") for e in emotions]
            mz = _matrix(row, emotions, len(tokens))
            if mz is None:
                continue
            z = mz
        doc_id = next((str(row[c]) for c in ID_COLUMNS if row.get(c) is not None), str(len(out)))
        out.append(
            TokenDoc(
                doc_id=doc_id, tokens=tokens, emotions=emotions, z=z, flags=_flags(row.get("flags"))
            )
        )
    return out
