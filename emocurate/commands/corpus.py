"""CLI commands for the corpus stage: ``calibrate``, ``score`` and ``curate`` (registered by emocurate.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from emocurate.commands.defaults import score_default


def _top_reason(out: Path) -> str:
    """``; most often: REASON (N rows)`` from a score folder's quarantine file, or ``""``."""
    import json
    from collections import Counter

    try:
        lines = (out / "quarantine.jsonl").read_text("utf-8").splitlines()
        reasons = Counter(json.loads(x)["reason"] for x in lines if x.strip())
    except (OSError, ValueError, KeyError):
        return ""
    if not reasons:
        return ""
    reason, n = reasons.most_common(1)[0]
    return f"; most often: {reason} ({n} rows)"


def calibrate_cmd(
    vectors: Path = typer.Argument(..., help="VectorSet folder (from `emocurate fit`)."),
    reference: list[str] | None = typer.Option(
        None,
        "--reference",
        help="Reference corpus (any input `score` reads; repeatable). Default: "
        "VECTORS/neutral. Use neutral text like the corpus you will score.",
    ),
    text_field: str = typer.Option(
        score_default("text_field"), "--text-field", help="Field holding the text."
    ),
    limit: int = typer.Option(5000, "--limit", min=1, help="Read at most N reference rows."),
    rate: float = typer.Option(
        0.01, "--rate", help="False-positive rate whose flag rates are checked and printed."
    ),
    smooth: int = typer.Option(
        score_default("smooth"), "--smooth", help="Moving-average window (as in score)."
    ),
    layer: int | None = typer.Option(
        score_default("layer"), "--layer", help="Probe layer (as in score)."
    ),
    window: int | None = typer.Option(
        score_default("window"), "--window", help="Window in tokens (as in score)."
    ),
    device: str = typer.Option(score_default("device"), "--device", help="Torch device."),
    model: str | None = typer.Option(
        score_default("model"), "--model", help="Model (default: the VectorSet's)."
    ),
) -> None:
    """Calibrate flag thresholds on a reference corpus (writes VECTORS/calibration.json).

    \b
    Example:
      emocurate calibrate runs/vectors
    """
    from emocurate.configs import ScoreConfig
    from emocurate.corpus.calibrate import calibrate
    from emocurate.errors import ConfigError

    if not 0 < rate < 1:
        raise ConfigError(f"invalid option --rate: {rate} is not between 0 and 1")
    cfg = ScoreConfig(
        text_field=text_field,
        smooth=smooth,
        layer=layer,
        window=window,
        device=device,
        model=model,
        progress=False,
    )
    cal = calibrate(vectors, reference, cfg, limit=limit, rate=rate)
    _print_calibration(cal, vectors, rate)


def _print_calibration(cal: Any, vectors: Path, rate: float) -> None:
    """What was calibrated, the thresholds at ``rate`` and the flag rates it gives, on stderr."""
    con = Console(stderr=True)
    chk = cal.check
    con.print(
        f"calibrated on {cal.n_docs} documents ({cal.reference_tokens} tokens, "
        f"{cal.n_pairs} dialogue pairs; scored joined as {cal.n_joined} documents, "
        f"{cal.n_tokens} tokens, positions up to "
        f"{cal.positions.max_position if cal.positions else '?'}): each flag family fires on a "
        f"share RATE of reference-like documents of any length (high_volatility and the kinds "
        f"derived from an episode: at most RATE) -> {vectors}/calibration.json",
        markup=False,
    )
    th = cal.thresholds(rate)
    con.print(
        f"thresholds at rate {rate} for a document of {cal.mean_tokens} tokens: "
        + ", ".join(f"{k} {v:.3f}" for k, v in th.items()),
        markup=False,
    )
    con.print(
        f"flag rate on the reference at {rate}: any {chk.any:.4f}; "
        + ", ".join(f"{k} {v:.4f}" for k, v in chk.per_kind.items()),
        markup=False,
    )
    for w in chk.warnings:
        con.print(f"warning: {w}", markup=False)


def score(
    corpus: list[str] = typer.Argument(
        ...,
        help="Corpus inputs: JSONL (.gz/.zst), CSV/TSV, Parquet, text "
        "files or folders (data files only; see docs/architecture.md), saved HF datasets, "
        "or hf:PATH[@SPLIT] to stream with datasets.load_dataset.",
    ),
    vectors: Path = typer.Option(..., "--vectors", help="VectorSet folder (from `emocurate fit`)."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder for scores, traces, quarantine, manifest."
    ),
    text_field: str = typer.Option(
        score_default("text_field"), "--text-field", help="Field holding the document text."
    ),
    id_field: str | None = typer.Option(
        score_default("id_field"),
        "--id-field",
        help="Field holding a document id (default: stable ids from source path and position).",
    ),
    engine: str = typer.Option(
        score_default("engine"), "--engine", help="local (streaming) or ray (Ray Data)."
    ),
    address: str | None = typer.Option(
        score_default("address"), "--address", help="Ray cluster address (engine=ray)."
    ),
    ray_actors: int = typer.Option(
        score_default("ray_actors"), "--ray-actors", help="Model actors for the Ray engine."
    ),
    batch_tokens: int = typer.Option(
        score_default("batch_tokens"), "--batch-tokens", help="Padded tokens per forward batch."
    ),
    window: int | None = typer.Option(
        score_default("window"), "--window", help="Window in tokens (default: model context)."
    ),
    stride: int | None = typer.Option(
        score_default("stride"),
        "--stride",
        help="Tokens between window starts (default: 3/4 of the window).",
    ),
    device: str = typer.Option(
        score_default("device"), "--device", help="Torch device, e.g. cpu or cuda (bf16 on GPU)."
    ),
    model: str | None = typer.Option(
        score_default("model"), "--model", help="Model path or id (default: the VectorSet's model)."
    ),
    limit: int | None = typer.Option(
        score_default("limit"), "--limit", help="Read at most N input rows."
    ),
    smooth: int = typer.Option(
        score_default("smooth"), "--smooth", help="Moving-average window (tokens) before metrics."
    ),
    shard_size: int = typer.Option(
        score_default("shard_size"), "--shard-size", help="Input rows per output shard."
    ),
    layer: int | None = typer.Option(
        score_default("layer"), "--layer", help="Probe layer (default: the VectorSet's)."
    ),
    regulation_vectors: Path | None = typer.Option(
        score_default("regulation_vectors"),
        "--regulation-vectors",
        help="Regulation VectorSet folder (healthy minus unhealthy).",
    ),
    threshold: float = typer.Option(
        score_default("fpr"),
        "--threshold",
        help="False-positive rate per flag kind on the calibration reference "
        "(VECTORS/calibration.json from `emocurate calibrate`).",
    ),
    z_threshold: float | None = typer.Option(
        None,
        "--z-threshold",
        help="Instead of the calibration: a fixed distress threshold in z units "
        "(other thresholds at their z-unit defaults).",
    ),
    attributes: Path | None = typer.Option(
        score_default("attributes"),
        "--attributes",
        help="Also write Dolma-style attribute files here: per input file, the same "
        'relative name, lines of {"id", "attributes": {"emocurate__<flag>": '
        "[[start, end, score], ...]}} with character offsets.",
    ),
    metrics_device: str = typer.Option(
        score_default("metrics_device"),
        "--metrics-device",
        help="Where the dense part of the metrics runs: device (batched tensors on the "
        "model's device), host (NumPy per document) or auto (device on CUDA, host "
        "otherwise). Same results; e.g. --device cuda --metrics-device device.",
    ),
) -> None:
    """Score corpus documents: emotion profiles, distress episodes, recovery, flags.

    \b
    Example:
      emocurate score bundled:sample --vectors runs/vectors --out runs/scores
      emocurate score big.jsonl --vectors runs/vectors --out runs/scores --device cuda --metrics-device device

    \f
    Long because typer declares every option in the signature; the body is short.
    """
    from emocurate.corpus.engines import score_corpus
    from emocurate.errors import ConfigError
    from emocurate.io import folder_lock

    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine '{engine}' (use local or ray)")
    if metrics_device not in ("auto", "device", "host"):
        raise ConfigError(f"unknown --metrics-device '{metrics_device}' (use auto, device or host)")
    cfg = _score_config(
        {
            "text_field": text_field,
            "id_field": id_field,
            "engine": engine,
            "address": address,
            "ray_actors": ray_actors,
            "batch_tokens": batch_tokens,
            "window": window,
            "stride": stride,
            "device": device,
            "model": model,
            "limit": limit,
            "smooth": smooth,
            "shard_size": shard_size,
            "layer": layer,
            "regulation_vectors": str(regulation_vectors) if regulation_vectors else None,
            "fpr": threshold,
            "attributes": str(attributes) if attributes else None,
            "metrics_device": metrics_device,
        },
        z_threshold,
    )
    with folder_lock(out):  # one writer per output folder (a second run: one line, pid)
        m = score_corpus(list(corpus), vectors, out, cfg)
    _print_score_summary(m, out, attributes)


def _score_config(opts: dict[str, Any], z_threshold: float | None) -> Any:
    """The run's :class:`ScoreConfig`; a bad value is one line naming its option (``fpr`` is
    ``--threshold``; ``--z-threshold`` replaces the calibration by fixed z-unit thresholds)."""
    from pydantic import ValidationError

    from emocurate.configs import MetricConfig, ScoreConfig
    from emocurate.errors import ConfigError, first_problem

    try:
        return ScoreConfig(
            **opts,
            z_thresholds=z_threshold is not None,
            metrics=MetricConfig(threshold=z_threshold)
            if z_threshold is not None
            else MetricConfig(),
        )
    except ValidationError as exc:
        field, msg = first_problem(exc)  # named by its option (pydantic's last line is a URL)
        flag = {"metrics.threshold": "z_threshold", "fpr": "threshold"}.get(field, field)
        raise ConfigError(f"invalid option --{flag.replace('_', '-')}: {msg}") from None


def _print_score_summary(m: Any, out: Path, attributes: Path | None) -> None:
    """The run's counts on stderr, with its note and reference-shift warnings; no row scored
    is an error (a silent exit 0 would hide a wrong option)."""
    from emocurate.errors import InputError

    if not m.scored:
        raise InputError(
            f"scored 0 of {m.rows_in} rows ({m.quarantined} quarantined"
            f"{_top_reason(out)}); see {out / 'quarantine.jsonl'}"
        )
    flagged = m.summary.docs_flagged if m.summary else 0
    Console(stderr=True).print(
        f"scored {m.scored} of {m.rows_in} rows ({m.quarantined} quarantined) "
        f"{m.tokens} tokens in {m.seconds:.1f}s; {flagged} flagged -> {out}",
        markup=False,
    )
    if m.flags_note:
        Console(stderr=True).print(f"note: {m.flags_note}", markup=False)
    for shift in m.reference_shift:
        if shift.warning:
            Console(stderr=True).print(f"warning: {shift.warning}", markup=False)
    if m.attributes:
        Console(stderr=True).print(
            f"attributes: {len(m.attributes.files)} files -> {attributes}", markup=False
        )


def curate_cmd(
    scores_dir: Path = typer.Argument(..., help="Output folder of `emocurate score`."),
    policy: str = typer.Option(
        ...,
        "--policy",
        help="YAML policy file, or bundled:default (emocurate/data/policy_default.yaml).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder for kept/excluded Parquet and manifest."
    ),
    corpus: list[str] | None = typer.Option(
        None,
        "--corpus",
        help="The scored corpus inputs, to attach texts to kept/excluded rows (repeatable).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Drop/rebalance even when the vectors' held-out accuracy overlaps chance.",
    ),
    flag_only: bool = typer.Option(
        False,
        "--flag-only",
        help="When the vectors do not beat chance, turn drops into flags instead of refusing.",
    ),
) -> None:
    """Keep, flag, drop, rebalance and weight scored documents with a policy.

    Drops and rebalancing are refused (unless --force or --flag-only) when the vectors the
    corpus was scored with do not beat chance on held-out rows.

    \b
    Example:
      emocurate curate runs/scores --policy bundled:default --out runs/curated
    """
    from emocurate.artifacts import Untrusted
    from emocurate.corpus.curate import curate
    from emocurate.pipeline import bundled_path

    if policy.startswith("bundled:"):
        policy = str(bundled_path(policy))
    mode: Untrusted = "force" if force else "flag-only" if flag_only else "refuse"
    m = curate(scores_dir, policy, out, corpus=list(corpus) if corpus else None, untrusted=mode)
    con = Console(stderr=True)
    g = m.guardrail
    if g.decision in ("flag-only", "forced"):
        con.print(f"guardrail: {g.decision}: {g.reason}", markup=False)
    con.print(
        f"kept {m.kept}, flagged {m.flagged}, dropped {m.dropped} of {m.rows_in} -> {out}",
        markup=False,
    )
    for r in m.rules:
        con.print(
            f"  {r.rule:<32} {r.action:<5} matched {r.matched:>6}  decided {r.decided:>6}",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``calibrate``, ``score`` and ``curate``."""

    app.command("calibrate")(calibrate_cmd)
    app.command("score")(score)
    app.command("curate")(curate_cmd)
