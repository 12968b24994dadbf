"""The per-document score row and its flat, filterable Parquet layout.

A :class:`CorpusScore` keeps structure (dicts per emotion, a list of flags); :meth:`flat`
spreads it into one column per metric and per emotion (``mean__<emotion>``,
``p95__<emotion>``) plus ``flag_kinds`` so a curator can filter with plain column expressions
(``pl.col("distress_max") > 2``, ``pl.col("flag_kinds").list.contains("unresolved_end")``).
The schema is explicit so that every shard has the same column types even when a metric is
null throughout one shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pydantic import Field

from emocurate.artifacts import METRIC_KEYS
from emocurate.corpus.prepared import Prepared
from emocurate.corpus.regulation import Analysis, TurnScore
from emocurate.records import DocScore, Flag, Model

FLAG_TYPE = pa.struct(
    [
        ("kind", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("severity", pa.float64()),
        ("evidence", pa.string()),
    ]
)
TURN_TYPE = pa.struct(
    [
        ("speaker", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("valence", pa.float64()),
        ("arousal", pa.float64()),
        ("distress", pa.float64()),
        ("dominant", pa.string()),
    ]
)


class CorpusScore(Model):
    """One scored document: profile, regulation metrics, flags and dialogue turns."""

    doc_id: str
    source: str = ""
    position: str = ""
    n_tokens: int
    n_chars: int = 0
    n_windows: int = 0
    is_dialogue: bool = False
    dominant: list[str] = Field(default_factory=list)
    emotion_mean: dict[str, float] = Field(default_factory=dict)
    emotion_p95: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    flags: list[Flag] = Field(default_factory=list)
    turns: list[TurnScore] = Field(default_factory=list)

    @classmethod
    def of(cls, p: Prepared, an: Analysis, names: Sequence[str], flags: list[Flag]) -> CorpusScore:
        """The row of one document: who it is (``p.doc``), its tokens, and what the analysis found.

        ``flags`` are the analysis' flags with their evidence text (the scorer adds it from the
        token offsets); ``names`` are the emotions in the order of ``an.mean``/``an.p95``.
        """
        return cls(
            doc_id=p.doc.doc_id,
            source=p.doc.source,
            position=p.doc.position,
            n_tokens=len(p.ids),
            n_chars=len(p.doc.text),
            n_windows=len(p.windows),
            is_dialogue=bool(p.turns),
            dominant=an.dominant,
            emotion_mean={n: float(v) for n, v in zip(names, an.mean, strict=True)},
            emotion_p95={n: float(v) for n, v in zip(names, an.p95, strict=True)},
            metrics=an.metrics,
            flags=flags,
            turns=an.turns,
        )

    def flat(self) -> dict[str, Any]:
        """One flat row (see :func:`score_schema`)."""
        row: dict[str, Any] = {
            "doc_id": self.doc_id,
            "source": self.source,
            "position": self.position,
            "n_tokens": self.n_tokens,
            "n_chars": self.n_chars,
            "n_windows": self.n_windows,
            "is_dialogue": self.is_dialogue,
            "dominant": list(self.dominant),
            "flag_kinds": sorted({f.kind for f in self.flags}),
            "n_flags": len(self.flags),
        }
        for key in METRIC_KEYS:
            row[key] = self.metrics.get(key)
        for name, v in self.emotion_mean.items():
            row[f"mean__{name}"] = v
        for name, v in self.emotion_p95.items():
            row[f"p95__{name}"] = v
        row["flags"] = [f.model_dump() for f in self.flags]
        row["turns"] = [t.model_dump() for t in self.turns]
        return row

    @classmethod
    def from_flat(cls, row: dict[str, Any]) -> CorpusScore:
        """Rebuild the structured row from a flat Parquet row (a curated row's added columns
        are ignored; a null column takes the field's default).

        Raises ``ValidationError`` naming the field (``flags.0.start``) when the row does not
        fit; ``n_tokens`` and ``doc_id`` are required.
        """
        means = {k[6:]: v for k, v in row.items() if k.startswith("mean__")}
        p95 = {k[5:]: v for k, v in row.items() if k.startswith("p95__")}
        plain = {k: v for k, v in row.items() if k in _FLAT_FIELDS and v is not None}
        return cls.model_validate(
            {
                **plain,
                "emotion_mean": means,
                "emotion_p95": p95,
                "metrics": {k: row.get(k) for k in METRIC_KEYS},
            }
        )

    def to_docscore(self) -> DocScore:
        """The shared :class:`~emocurate.records.DocScore` record (nulls dropped from metrics)."""
        return DocScore(
            doc_id=self.doc_id,
            source=self.source,
            n_tokens=self.n_tokens,
            dominant=self.dominant,
            emotion_mean=self.emotion_mean,
            emotion_p95=self.emotion_p95,
            metrics={k: v for k, v in self.metrics.items() if v is not None},
            flags=self.flags,
        )


_FLAT_FIELDS = frozenset(CorpusScore.model_fields) - {"emotion_mean", "emotion_p95", "metrics"}
"""The :class:`CorpusScore` fields a flat row holds under their own name."""


def score_schema(names: list[str]) -> pa.Schema:
    """Arrow schema of the scores sidecar for a VectorSet with these direction names."""
    fields = [
        pa.field("doc_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("position", pa.string()),
        pa.field("n_tokens", pa.int64()),
        pa.field("n_chars", pa.int64()),
        pa.field("n_windows", pa.int64()),
        pa.field("is_dialogue", pa.bool_()),
        pa.field("dominant", pa.list_(pa.string())),
        pa.field("flag_kinds", pa.list_(pa.string())),
        pa.field("n_flags", pa.int64()),
    ]
    fields += [pa.field(k, pa.float64()) for k in METRIC_KEYS]
    fields += [pa.field(f"mean__{n}", pa.float64()) for n in names]
    fields += [pa.field(f"p95__{n}", pa.float64()) for n in names]
    fields += [pa.field("flags", pa.list_(FLAG_TYPE)), pa.field("turns", pa.list_(TURN_TYPE))]
    return pa.schema(fields)


def rows_table(rows: list[CorpusScore], names: list[str]) -> pa.Table:
    """Rows to an Arrow table with the fixed schema."""
    return pa.Table.from_pylist([r.flat() for r in rows], schema=score_schema(names))


TRACE_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("n_tokens", pa.int64()),
        pa.field("truncated", pa.bool_()),
        pa.field("tokens", pa.list_(pa.string())),
        pa.field("series_names", pa.list_(pa.string())),
        pa.field("series", pa.list_(pa.list_(pa.float32()))),
        pa.field("flags", pa.list_(FLAG_TYPE)),
    ]
)
