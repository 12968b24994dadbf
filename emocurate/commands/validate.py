"""``emocurate validate IN_DIR --out DIR``: run validators and print the funnel.

The command only turns options into a :class:`~emocurate.validators.pipeline.ValidateConfig`
and calls :func:`~emocurate.validators.pipeline.validate`; the funnel table is read back from
the manifest that call returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from emocurate.artifacts import ValidateManifest
from emocurate.commands.defaults import validate_default
from emocurate.errors import ConfigError, first_problem


def _config(opts: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from emocurate.configs import ValidateConfig

    try:
        return ValidateConfig(**{k: v for k, v in opts.items() if v is not None})
    except ValidationError as exc:
        field, msg = first_problem(exc)
        where = f"--{field.replace('_', '-')}: " if field else ""
        raise ConfigError(f"invalid option {where}{msg}") from None


def funnel_table(manifest: ValidateManifest) -> Table:
    """The funnel: rows in, rejected and out per step, with the top reason codes."""
    table = Table(title=f"validation funnel: {manifest.kept} of {manifest.total} kept")
    for col in ("step", "in", "rejected", "out", "top reasons"):
        table.add_column(col, justify="right" if col in ("in", "rejected", "out") else "left")
    for step in manifest.funnel:
        stats = manifest.per_validator.get(step.step)
        reasons = stats.reasons if stats else {}
        top = ", ".join(f"{k} {v}" for k, v in list(reasons.items())[:3])
        cached = " (cached)" if stats is not None and stats.cached else ""
        if step.status != "used":
            top = step.status.upper() if not top else f"{step.status.upper()}; {top}"
        table.add_row(step.step + cached, str(step.n_in), str(step.rejected), str(step.out), top)
    return table


def emotion_table(manifest: ValidateManifest) -> Table:
    """Per emotion: rows in, rejected by each validator, kept."""
    steps = ["input", *manifest.validators]
    table = Table(title="per emotion")
    table.add_column("emotion")
    table.add_column("in", justify="right")
    for s in steps:
        table.add_column(f"-{s}", justify="right")
    table.add_column("kept", justify="right")
    for emotion, slot in manifest.per_emotion.items():
        table.add_row(
            emotion,
            str(slot.n_in),
            *(str(slot.rejected_by.get(s, 0)) for s in steps),
            str(slot.kept),
        )
    return table


def validate_cmd(
    in_dir: Path = typer.Argument(
        ...,
        help="Stage folder with data/*.parquet records (stories, dialogues, neutral or regulation).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder: kept/, rejected/, manifest.json (cached verdicts make reruns resume).",
    ),
    validators: str = typer.Option(
        ",".join(validate_default("validators")),
        "--validators",
        help="Comma list, run in order: rules, leakage, dedup, judge, rubric (story grades 1-5, by the judge model), probe.",
    ),
    judge_backend: str | None = typer.Option(
        validate_default("judge_backend"),
        "--judge-backend",
        help="Backend of the LLM judge: anthropic, openai, transformers or fake.",
    ),
    judge_model: str | None = typer.Option(
        validate_default("judge_model"), "--judge-model", help="Model of the LLM judge."
    ),
    base_url: str | None = typer.Option(
        validate_default("base_url"),
        "--base-url",
        help="Judge API base URL (OpenAI-compatible servers, proxies); default from the SDK's environment variable.",
    ),
    probe_model: str = typer.Option(
        validate_default("probe_model"),
        "--probe-model",
        help="Model whose pooled activations the probe uses (stories260K, Hub id, folder, .gguf) or 'tfidf' for text features.",
    ),
    dedup_threshold: float | None = typer.Option(
        None,
        "--dedup-threshold",
        help="Estimated Jaccard similarity (0-1] at which texts are near-duplicates "
        f"(default {validate_default('dedup_threshold')}).",
    ),
    reference_dir: Path | None = typer.Option(
        None,
        "--reference",
        help="Stage folder of records to deduplicate against (matches are rejected).",
    ),
    min_words: int | None = typer.Option(
        None,
        "--min-words",
        help=f"Fewest words a record may have (default {validate_default('min_words')}).",
    ),
    max_words: int | None = typer.Option(
        None,
        "--max-words",
        help=f"Most words a record may have (default {validate_default('max_words')}).",
    ),
    seed: int = typer.Option(
        validate_default("seed"), "--seed", help="Seed for judge option order and probe folds."
    ),
    no_cache: bool = typer.Option(
        not validate_default("cache"),
        "--no-cache",
        help="Recompute every validator instead of reusing cached verdicts.",
    ),
    per_emotion: bool = typer.Option(
        False, "--per-emotion", help="Also print the per-emotion funnel."
    ),
) -> None:
    """Check generated records (rules, leakage, dedup, LLM judge, probe) and print the funnel.

    \b
    Example:
      emocurate validate runs/stories --out runs/validated --validators rules,leakage,dedup

    \f
    Long because typer declares every option in the signature; the body is short.
    """
    from emocurate.validators.pipeline import validate

    names = [v.strip() for v in validators.split(",") if v.strip()]
    cfg = _config(
        {
            "validators": names,
            "judge_backend": judge_backend,
            "judge_model": judge_model,
            "base_url": base_url,
            "probe_model": probe_model,
            "dedup_threshold": dedup_threshold,
            "reference_dir": str(reference_dir) if reference_dir else None,
            "min_words": min_words,
            "max_words": max_words,
            "seed": seed,
            "cache": not no_cache,
        }
    )
    from emocurate.io import folder_lock

    console = Console()
    with folder_lock(out):  # one writer per output folder (a second run: one line, pid)
        manifest = validate(
            in_dir, out, cfg, log=lambda m: console.print(m, markup=False, highlight=False)
        )
    console.print(funnel_table(manifest))
    if per_emotion:
        console.print(emotion_table(manifest))
    console.print(
        f"kept -> {out / 'kept'}   rejected -> {out / 'rejected'}",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``validate``."""

    app.command("validate")(validate_cmd)
