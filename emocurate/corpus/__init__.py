"""Corpus scoring, regulation metrics and curation.

``score_corpus`` runs the model once to the probe layer over a corpus and writes a per-document
sidecar (emotion profile, distress episodes, recovery, escalation, dialogue co-regulation, flags
with token spans); ``curate`` applies a YAML policy to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emocurate.corpus.bundled import bundled_corpus
from emocurate.corpus.engines import score_corpus
from emocurate.corpus.regulation import MetricConfig
from emocurate.corpus.rows import CorpusScore
from emocurate.corpus.score import ScoreConfig, Scorer


def read_traces(
    scores_dir: str | Path, doc_ids: list[str] | None = None
) -> list[dict[str, object]]:
    """Token-level traces written by ``score_corpus`` (for reports), optionally for some documents."""
    import pyarrow.parquet as pq

    files = sorted((Path(scores_dir) / "tokens").glob("shard-*.parquet"))
    wanted = set(doc_ids) if doc_ids is not None else None
    out = []
    for f in files:
        for row in pq.read_table(f).to_pylist():
            if wanted is None or row["doc_id"] in wanted:
                out.append(row)
    return out


def __getattr__(name: str) -> Any:
    """``CuratePolicy`` loads polars, so it is imported on first use.

    (The curation function is ``emocurate.corpus.curate.curate``; ``emocurate.corpus.curate`` is
    its module.)
    """
    if name == "CuratePolicy":
        import importlib

        return getattr(importlib.import_module("emocurate.corpus.curate"), name)
    raise AttributeError(name)


__all__ = [
    "CorpusScore",
    "CuratePolicy",
    "MetricConfig",
    "ScoreConfig",
    "Scorer",
    "bundled_corpus",
    "read_traces",
    "score_corpus",
]
