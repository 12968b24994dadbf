"""Curate a scored corpus with a YAML policy: keep, flag, drop, rebalance, weight.

A policy is a list of rules (conditions on metric columns and flags, each with an action), an
optional cap on the share of any dominant emotion among kept documents, and optional sampling
weights from metric columns. Decisions: a matching ``keep`` rule is an explicit exception and
wins; otherwise any matching ``drop`` rule drops; otherwise any matching ``flag`` rule keeps the
document with a flag; documents that match nothing get ``default``. Every excluded document
keeps the names of the rules that excluded it. What each rule did is summarised with polars.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from emocurate.artifacts import CurateManifest, RuleCount, ScoreManifest, Untrusted
from emocurate.configs import ScoreConfig
from emocurate.corpus.guard import check
from emocurate.corpus.policy import (  # the policy's models, re-exported for earlier callers
    CuratePolicy,
    Rebalance,
    Weights,
    flag_only,
    risky_actions,
)
from emocurate.corpus.readers import Doc, ReadOptions, iter_corpus
from emocurate.errors import ConfigError, InputError
from emocurate.io import (
    ensure_dir,
    write_configs_readme,
    write_table,
)

__all__ = ["CuratePolicy", "curate", "decide", "flag_only", "read_kept", "risky_actions"]


def _hash01(doc_id: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest()[:12], 16) / 16**12


def decide(df: pl.DataFrame, policy: CuratePolicy) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add ``decision``, ``reasons`` and ``weight`` columns; return it and a per-rule summary."""
    cols = df.columns
    names = [r.name for r in policy.rules]
    if len(set(names)) != len(names):
        raise ConfigError("policy rule names must be unique")
    matched = (
        df.select([r.when.expr(cols).alias(f"__m{i}") for i, r in enumerate(policy.rules)])
        if policy.rules
        else pl.DataFrame()
    )

    def any_of(action: str) -> pl.Expr:
        ex = [pl.col(f"__m{i}") for i, r in enumerate(policy.rules) if r.action == action]
        return pl.any_horizontal(ex) if ex else pl.lit(False)

    work = pl.concat([df, matched], how="horizontal") if policy.rules else df
    reason_exprs = [
        pl.when(pl.col(f"__m{i}")).then(pl.lit(r.name)).otherwise(None)
        for i, r in enumerate(policy.rules)
    ]
    work = work.with_columns(
        decision=pl.when(any_of("keep"))
        .then(pl.lit("keep"))
        .when(any_of("drop"))
        .then(pl.lit("drop"))
        .when(any_of("flag"))
        .then(pl.lit("flag"))
        .otherwise(pl.lit(policy.default)),
        reasons=(
            pl.concat_list(reason_exprs).list.drop_nulls()
            if reason_exprs
            else pl.lit([], dtype=pl.List(pl.String))
        ),
    )
    if policy.default == "drop":
        work = work.with_columns(
            reasons=pl.when(pl.col("reasons").list.len() == 0)
            .then(pl.lit(["default"]))
            .otherwise(pl.col("reasons"))
        )
    summary_rows = []
    for i, r in enumerate(policy.rules):
        m = work[f"__m{i}"]
        decided = work.filter(pl.col(f"__m{i}") & (pl.col("decision") == r.action)).height
        summary_rows.append(
            {
                "rule": r.name,
                "action": r.action,
                "matched": int(m.sum()),
                "decided": decided,
                "share": float(m.cast(pl.Float64).mean() or 0.0) if len(m) else 0.0,  # type: ignore[arg-type]
            }
        )
    if policy.rebalance is not None:
        work, rb = _rebalance(work, policy.rebalance)
        summary_rows.append(
            {
                "rule": "rebalance",
                "action": "drop",
                "matched": rb,
                "decided": rb,
                "share": rb / max(1, work.height),
            }
        )
    work = work.drop([c for c in work.columns if c.startswith("__m")])
    work = _weights(work, policy.weights, cols)
    summary = pl.DataFrame(
        summary_rows,
        schema={
            "rule": pl.String,
            "action": pl.String,
            "matched": pl.Int64,
            "decided": pl.Int64,
            "share": pl.Float64,
        },
    )
    return work, summary


def _rebalance_quotas(counts: dict[str, int], others: int, rb: Rebalance) -> dict[str, int]:
    """How many documents of each dominant emotion to keep so no share exceeds ``max_share``.

    The share is measured on the FINAL kept set: cutting one emotion shrinks the total and raises
    every other share, so the cap ``max(min_keep, floor(max_share * total))`` is recomputed until
    nothing changes. Caps only shrink, so this stops, and because every step cuts no more than
    the largest valid set allows, it ends at the largest kept set that satisfies the cap (only
    ``min_keep`` may leave an emotion above ``max_share``). ``others`` are kept documents without
    a dominant emotion: they count in the total but are never cut.
    """
    quota = dict(counts)
    while True:
        total = others + sum(quota.values())
        cap = max(rb.min_keep, math.floor(rb.max_share * total + 1e-9))
        changed = {e: cap for e, n in quota.items() if n > cap}
        if not changed:
            return quota
        quota.update(changed)


def _rebalance(work: pl.DataFrame, rb: Rebalance) -> tuple[pl.DataFrame, int]:
    """Drop (deterministically, by a seeded hash of the id) documents of over-represented emotions.

    Within each emotion the documents with the lowest hashes are kept, so the result does not
    depend on row order and a looser cap keeps a superset of a tighter one.
    """
    ranked = work.with_columns(
        __dom=pl.col("dominant").list.first(),
        __h=pl.col("doc_id").map_elements(lambda d: _hash01(d, rb.seed), return_dtype=pl.Float64),
    ).with_columns(
        __rank=pl.when(pl.col("decision") != "drop")
        .then(pl.col("__h").rank("ordinal").over(pl.col("__dom"), pl.col("decision") != "drop"))
        .otherwise(None)
    )
    kept = ranked.filter(pl.col("decision") != "drop")
    counts = {
        str(r["__dom"]): int(r["len"])
        for r in kept.filter(pl.col("__dom").is_not_null()).group_by("__dom").len().to_dicts()
    }
    others = kept.height - sum(counts.values())
    quota = _rebalance_quotas(counts, others, rb)
    limit = pl.col("__dom").replace_strict(quota, default=None, return_dtype=pl.Int64)
    over = ((pl.col("__rank") > limit) & pl.col("__dom").is_not_null()).fill_null(False)
    n = int(ranked.select(over.sum()).item())
    ranked = ranked.with_columns(
        decision=pl.when(over).then(pl.lit("drop")).otherwise(pl.col("decision")),
        reasons=pl.when(over)
        .then(pl.col("reasons").list.concat(pl.concat_list(pl.lit("rebalance:") + pl.col("__dom"))))
        .otherwise(pl.col("reasons")),
    )
    return ranked.drop("__dom", "__h", "__rank"), n


def _weights(work: pl.DataFrame, w: Weights | None, cols: list[str]) -> pl.DataFrame:
    if w is None:
        return work.with_columns(weight=pl.lit(1.0))
    logw = pl.lit(0.0)
    for t in w.terms:
        if t.metric not in cols:
            close = difflib.get_close_matches(t.metric, cols, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"policy weight names unknown metric '{t.metric}'{hint}")
        logw = logw + t.scale * pl.col(t.metric).cast(pl.Float64).fill_null(t.fill).fill_nan(t.fill)
    work = work.with_columns(weight=logw.exp().clip(w.min, w.max))
    mean = work.filter(pl.col("decision") != "drop")["weight"].mean()
    if isinstance(mean, float) and mean > 0:
        work = work.with_columns(weight=pl.col("weight") / mean)
    return work


def curate(
    scores_dir: str | Path,
    policy: str | Path | CuratePolicy,
    out_dir: str | Path,
    *,
    corpus: list[str | Path] | None = None,
    untrusted: Untrusted = "refuse",
) -> CurateManifest:
    """Apply ``policy`` to a scores folder; write kept/excluded Parquet and a manifest.

    Drops, rebalancing and ``default: drop`` need vectors whose held-out accuracy interval is
    above chance (see :mod:`emocurate.corpus.guard`); otherwise ``untrusted`` decides: refuse
    (one-line error), ``flag-only`` (drops become flags, no rebalance) or ``force``.

    Writes ``out_dir/data/kept.parquet`` (kept and flagged documents with ``decision``,
    ``reasons`` and ``weight``; with ``corpus`` also their ``text``), ``out_dir/excluded/
    excluded.parquet`` (with reasons), ``out_dir/summary/rules.parquet`` and ``manifest.json``;
    a table with no rows is not written (``datasets`` cannot load a 0-row Parquet folder), the
    manifest's ``kept``/``flagged``/``dropped`` counts say so.
    """
    pol = policy if isinstance(policy, CuratePolicy) else CuratePolicy.load(policy)
    sdir = Path(scores_dir)
    files = sorted((sdir / "data").glob("shard-*.parquet")) if (sdir / "data").is_dir() else []
    if not files:
        raise InputError(
            f"{sdir}: no scores found (expected data/shard-*.parquet from `emocurate score`)"
        )
    df = pl.read_parquet(files)
    scores = ScoreManifest.read(sdir)  # None: the guardrail then finds no vector set to trust
    vectors_dir = scores.vectors.dir if scores is not None else None
    guard = check(vectors_dir, risky_actions(pol), untrusted)
    if guard.decision == "flag-only":
        pol = flag_only(pol)
    work, summary = decide(df, pol)
    out = ensure_dir(out_dir)
    kept = work.filter(pl.col("decision") != "drop")
    excluded = work.filter(pl.col("decision") == "drop")
    if corpus:
        kept, excluded = _attach_text(kept, excluded, corpus, scores)
    tables = {
        "default": ("data", "kept.parquet", kept),
        "excluded": ("excluded", "excluded.parquet", excluded),
        "summary": ("summary", "rules.parquet", summary),
    }
    written = {
        name: f"{sub}/*.parquet"
        for name, (sub, fname, table) in tables.items()
        if _write_nonempty(out / sub / fname, table)
    }
    if written:
        write_configs_readme(
            out, written, title="emocurate curated corpus", note=_readme_note(tables, written)
        )
    manifest = CurateManifest(
        scores_dir=str(sdir),
        policy=pol,
        rows_in=df.height,
        kept=int((work["decision"] == "keep").sum()),
        flagged=int((work["decision"] == "flag").sum()),
        dropped=excluded.height,
        rules=[RuleCount.model_validate(r) for r in summary.to_dicts()],
        kept_by_dominant=_kept_by_dominant(kept),
        with_text=bool(corpus),
        guardrail=guard,
    )
    manifest.save(out)
    return manifest


def _kept_by_dominant(kept: pl.DataFrame) -> dict[str, int]:
    """Kept documents per dominant emotion, most first (ties by name)."""
    by_dom = (
        kept.select(pl.col("dominant").list.first().alias("emotion"))
        .group_by("emotion")
        .len()
        .sort(["len", "emotion"], descending=[True, False])
    )
    return {str(r["emotion"]): int(r["len"]) for r in by_dom.to_dicts()}


def _readme_note(tables: dict[str, tuple[str, str, pl.DataFrame]], written: dict[str, str]) -> str:
    """The README's note on the tables, saying which are absent because they had no rows."""
    empty = [name for name in tables if name not in written]
    note = (
        "Kept documents (with decisions and weights); `excluded` keeps every dropped document "
        "with its reasons; `summary` counts what each rule did."
    )
    if "excluded" in empty:
        note += " Nothing was dropped, so there is no `excluded` table."
    if "default" in empty:
        note += " Every document was dropped, so there is no table of kept documents."
    return note


def _write_nonempty(path: Path, table: pl.DataFrame) -> bool:
    """Write ``table`` as Parquet unless it has no rows; say whether it was written.

    ``datasets.load_dataset("parquet", data_dir=...)`` cannot read a 0-row Parquet file
    (``ArrowInvalid: BatchSize must be greater than 0``) nor a 0-row split, so an empty table is
    not written at all (a stale file from an earlier run is removed); the manifest's counts say
    it is empty and the README declares only the tables that exist.
    """
    if table.height == 0:
        path.unlink(missing_ok=True)
        return False
    write_table(path, table.to_arrow())
    return True


def _attach_text(
    kept: pl.DataFrame,
    excluded: pl.DataFrame,
    corpus: list[str | Path],
    manifest: ScoreManifest | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Join document texts back by id, re-reading the corpus with the scoring run's options."""
    cfg = manifest.config if manifest is not None else ScoreConfig()
    opts = ReadOptions(cfg.text_field, cfg.id_field, cfg.max_chars)
    wanted = set(kept["doc_id"].to_list()) | set(excluded["doc_id"].to_list())
    ids, texts = [], []
    for item in iter_corpus([str(c) for c in corpus], opts):
        if isinstance(item, Doc) and item.doc_id in wanted:
            ids.append(item.doc_id)
            texts.append(item.text)
    text_df = pl.DataFrame(
        {"doc_id": ids, "text": texts}, schema={"doc_id": pl.String, "text": pl.String}
    )
    missing = len(wanted) - text_df.height
    if missing:
        raise InputError(
            f"{missing} scored documents were not found in the given --corpus "
            "(pass the same inputs, text and id fields as for scoring)"
        )
    return (
        kept.join(text_df, on="doc_id", how="left", maintain_order="left"),
        excluded.join(text_df, on="doc_id", how="left", maintain_order="left"),
    )


def read_kept(out_dir: str | Path) -> pa.Table:
    """The kept table of a curate folder."""
    return pq.read_table(Path(out_dir) / "data" / "kept.parquet")
