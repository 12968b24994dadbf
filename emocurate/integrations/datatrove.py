"""datatrove steps: score documents and curate them inside a datatrove pipeline.

Install with ``pip install 'emocurate[datatrove]'``. Two steps::

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from emocurate.integrations.datatrove import EmocurateFilter, EmocurateScorer

    LocalPipelineExecutor(
        pipeline=[
            JsonlReader("data/"),
            EmocurateScorer("runs/vectors"),
            EmocurateFilter("policy.yaml", "runs/vectors", exclusion_writer=JsonlWriter("excluded/")),
            JsonlWriter("kept/"),
        ],
        tasks=8,
    ).run()

:class:`EmocurateScorer` runs the same code as ``emocurate score`` (:func:`with_calibration`,
:func:`load_scoring_model` truncated at the probe layer, :meth:`Scorer.score_full`) on batches
of documents and writes ``Document.metadata["emocurate"]``: the flat score row of the score
Parquet files (metrics, ``mean__``/``p95__`` per emotion, ``flags`` with token spans and
evidence, ``flag_kinds``) and, with ``spans=True``, ``char_spans``: ``[[kind, start, end,
severity], ...]`` in character offsets. A document ``emocurate score`` would quarantine
(empty, NUL bytes, over ``max_chars``) is passed on with ``{"quarantined": reason}`` instead of
scores, never dropped silently.

:class:`EmocurateFilter` applies a curation policy (:func:`emocurate.corpus.curate.decide`)
per batch; dropped documents go to the exclusion writer with ``filter_reason`` naming the
rules. As ``emocurate curate``, it refuses drop rules when the vectors' held-out accuracy
overlaps chance (:func:`emocurate.corpus.guard.check`) unless ``force=True`` (or
``flag_only=True``, which turns drops into flags). Rebalancing needs the whole corpus and is
refused here (run ``emocurate curate`` on the score files for it); policy ``weights`` are
normalised over the kept documents of each batch, not of the corpus.

Both steps are plain picklable objects whose model is loaded lazily inside the worker, so they
run under the local, Slurm and Ray executors alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

try:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.writers.disk_base import DiskWriter
    from datatrove.utils.batching import batched
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "emocurate.integrations.datatrove needs the datatrove extra: "
        "pip install 'emocurate[datatrove]'"
    ) from exc

from emocurate.configs import ScoreConfig
from emocurate.corpus.score import Scorer

METADATA_KEY = "emocurate"


def _config(config: ScoreConfig | dict[str, Any] | None) -> ScoreConfig:
    if isinstance(config, ScoreConfig):
        return config
    return ScoreConfig.model_validate({"progress": False, **(config or {})})


class EmocurateScorer(PipelineStep):
    """Score each document with an emotion VectorSet (the ``emocurate score`` scorer).

    Args:
        vectors_dir: VectorSet folder (with ``calibration.json`` unless ``z_thresholds``).
        config: a :class:`ScoreConfig` or its fields (device, dtype, batch_tokens, fpr, ...).
        spans: also write flag spans in character offsets (``char_spans``).
        batch_docs: documents handed to the scorer at once (bounded memory).
        metadata_key: where in ``Document.metadata`` the scores go.
    """

    name = "emocurate scorer"
    type = "📈 - SCORER"
    _requires_dependencies = ["torch", "transformers"]

    def __init__(
        self,
        vectors_dir: str | Path,
        config: ScoreConfig | dict[str, Any] | None = None,
        *,
        spans: bool = True,
        batch_docs: int = 256,
        metadata_key: str = METADATA_KEY,
    ) -> None:
        super().__init__()
        from emocurate.corpus.score import with_calibration

        self.vectors_dir = str(vectors_dir)
        # Resolved (and a missing calibration refused) where the pipeline is built, not in a job.
        self.config = with_calibration(self.vectors_dir, _config(config))
        self.spans = spans
        self.batch_docs = max(1, batch_docs)
        self.metadata_key = metadata_key
        self._scorer: Scorer | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scorer"] = None  # the model is loaded in each worker, never pickled
        return state

    def scorer(self) -> Scorer:
        """The scorer (vectors, calibration, model truncated at the probe), loaded once per worker."""
        if self._scorer is None:
            from emocurate.corpus.score import load_scoring_model, load_vectors

            vs, reg = load_vectors(self.vectors_dir, self.config)
            lm = load_scoring_model(vs, reg, self.config)
            self._scorer = Scorer(vs, lm, self.config, regulation=reg)
        return self._scorer

    def score_batch(self, docs: list[Document]) -> None:
        """Write the scores of ``docs`` into their metadata (in place)."""
        from emocurate.corpus.readers import Doc, ReadOptions, _check_text

        opts = ReadOptions(max_chars=self.config.max_chars)
        good: list[tuple[Document, Doc]] = []
        for d in docs:
            item = _check_text(d.text, str(d.id), "", "", opts)
            if isinstance(item, Doc):
                good.append((d, item))
            else:
                d.metadata[self.metadata_key] = {"quarantined": item.reason}
                self.stat_update("quarantined")
        if not good:
            return
        with self.track_time("batch"):
            scored = self.scorer().score_full([(x.doc_id, x.text) for _, x in good])
        for (d, _), sd in zip(good, scored, strict=True):
            row = sd.row.flat()
            for k in ("source", "position"):
                row.pop(k, None)
            if self.spans and sd.char_spans is not None:
                row["char_spans"] = [[k, a, b, s] for k, a, b, s in sd.char_spans]
            d.metadata[self.metadata_key] = row
            self.stat_update("scored")
            self.stat_update("tokens", value=sd.row.n_tokens)
            if sd.row.flags:
                self.stat_update("flagged")

    def run(
        self, data: DocumentsPipeline | Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        """Score documents in batches of ``batch_docs``; every document is passed on."""
        if data is None:
            return
        for batch in batched(data, self.batch_docs):
            self.score_batch(batch)
            yield from batch


class EmocurateFilter(BaseFilter):
    """Keep, flag or drop scored documents with a curation policy (``emocurate curate`` rules).

    Args:
        policy: a :class:`CuratePolicy`, a YAML file, or ``bundled:default``.
        vectors_dir: the VectorSet the documents were scored with (its ``evaluation.json``
            decides whether drops are allowed).
        force: drop even when the vectors' held-out accuracy overlaps chance.
        flag_only: when untrusted, turn drops into flags instead of refusing.
        exclusion_writer: datatrove writer receiving dropped documents (``filter_reason``).
        quarantined: ``"exclude"`` (default) sends documents the scorer could not score to the
            exclusion writer with their reason; ``"keep"`` passes them on.
    """

    name = "emocurate curate"

    def __init__(
        self,
        policy: Any,
        vectors_dir: str | Path,
        *,
        force: bool = False,
        flag_only: bool = False,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 256,
        quarantined: str = "exclude",
        metadata_key: str = METADATA_KEY,
    ) -> None:
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        from emocurate.corpus.curate import CuratePolicy, risky_actions
        from emocurate.corpus.curate import flag_only as to_flags
        from emocurate.corpus.guard import check
        from emocurate.errors import ConfigError
        from emocurate.vectors.vectorset import VectorSet

        if isinstance(policy, str) and policy.startswith("bundled:"):
            from emocurate.pipeline import bundled_path

            policy = bundled_path(policy)
        pol = policy if isinstance(policy, CuratePolicy) else CuratePolicy.load(policy)
        if pol.rebalance is not None:
            raise ConfigError(
                "EmocurateFilter: rebalance needs the whole corpus, not a stream of batches; "
                "remove it from the policy or run `emocurate curate` on the score files"
            )
        if quarantined not in ("exclude", "keep"):
            raise ConfigError(
                f"EmocurateFilter: quarantined must be exclude or keep, not {quarantined!r}"
            )
        mode = "force" if force else "flag-only" if flag_only else "refuse"
        self.guard = check(str(vectors_dir), risky_actions(pol), mode)  # type: ignore[arg-type]
        self.policy = to_flags(pol) if self.guard.decision == "flag-only" else pol
        self.names = list(VectorSet.load(vectors_dir).names)
        self.quarantined = quarantined
        self.metadata_key = metadata_key

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """One document (see :meth:`filter_batch`)."""
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Decide a batch with the policy; annotate ``decision``, ``reasons`` and ``weight``."""
        import polars as pl
        import pyarrow as pa

        from emocurate.corpus.curate import decide
        from emocurate.corpus.rows import score_schema
        from emocurate.errors import ConfigError

        out: list[bool | tuple[bool, str]] = [True] * len(batch)
        rows, where = [], []
        for i, d in enumerate(batch):
            meta = d.metadata.get(self.metadata_key)
            if not isinstance(meta, dict):
                raise ConfigError(
                    f"document {d.id} has no metadata['{self.metadata_key}']; "
                    "put EmocurateScorer before EmocurateFilter"
                )
            if "quarantined" in meta:
                if self.quarantined == "exclude":
                    out[i] = (False, f"quarantined: {meta['quarantined']}")
                continue
            rows.append({**meta, "source": "", "position": ""})
            where.append(i)
        if not rows:
            return out
        table = pa.Table.from_pylist(rows, schema=score_schema(self.names))
        work, _ = decide(pl.from_arrow(table), self.policy)  # type: ignore[arg-type]
        for i, r in zip(
            where, work.select("decision", "reasons", "weight").to_dicts(), strict=True
        ):
            meta = batch[i].metadata[self.metadata_key]
            meta["decision"], meta["reasons"], meta["weight"] = (
                r["decision"],
                list(r["reasons"]),
                r["weight"],
            )
            if r["decision"] == "drop":
                out[i] = (False, ",".join(r["reasons"]) or "default")
        return out
