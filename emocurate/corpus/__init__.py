"""Corpus scoring, regulation metrics and curation.

``score_corpus`` runs the model once to the probe layer over a corpus and writes a per-document
sidecar (emotion profile, distress episodes, recovery, escalation, dialogue co-regulation, flags
with token spans); ``curate`` applies a YAML policy to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emocurate.configs import MetricConfig, ScoreConfig
    from emocurate.corpus.bundled import bundled_corpus
    from emocurate.corpus.engines import score_corpus
    from emocurate.corpus.policy import CuratePolicy
    from emocurate.corpus.rows import CorpusScore
    from emocurate.corpus.score import Scorer

# Loaded on first use (PEP 562): importing any ``emocurate.corpus.X`` runs this file, and the
# torch-free ones (``calibration``, read by ``emocurate.configs``) must not load torch through it.
_LAZY = {
    "bundled_corpus": "emocurate.corpus.bundled",
    "score_corpus": "emocurate.corpus.engines",
    "MetricConfig": "emocurate.configs",
    "CorpusScore": "emocurate.corpus.rows",
    "ScoreConfig": "emocurate.configs",
    "Scorer": "emocurate.corpus.score",
    "CuratePolicy": "emocurate.corpus.policy",
}


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
    """The public names, each imported from its module on first use (the scorer loads torch;
    ``CuratePolicy`` lives in the table-free ``emocurate.corpus.policy``). The curation
    function is ``emocurate.corpus.curate.curate``;
    ``emocurate.corpus.curate`` is its module."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
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
