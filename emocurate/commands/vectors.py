"""CLI commands for the vectors stage: ``fit``, ``steer`` and ``vectors evaluate|export-gguf``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from emocurate.commands.defaults import fit_default
from emocurate.errors import ConfigError, first_problem

if TYPE_CHECKING:  # annotations only: the CLI imports artifacts where it uses them
    from emocurate.artifacts import TransferReport


def _speaker_folders(path: Path) -> list[Path]:
    """The vector set folders under a fit output (itself, or its speaker subfolders)."""
    from emocurate.vectors.vectorset import META

    if (path / META).exists():
        return [path]
    subs = [path / s for s in ("human", "assistant") if (path / s / META).exists()]
    return subs or [path]


def _print_evaluation(report: TransferReport, out: Path | None) -> None:
    """The evaluation as a person reads it: the headline with its interval and baseline, then a
    row per emotion (recall, AUROC, what it is most often mistaken for)."""
    from rich.console import Console
    from rich.table import Table

    lo, hi = report.accuracy_ci
    labels, confusion, auroc = report.labels, report.confusion, report.auroc
    table = Table(
        title=f"{report.kind} vectors at layer {report.layer} ({report.method}) "
        f"on {report.n} records"
    )
    for col, justify in (
        ("emotion", "left"),
        ("records", "right"),
        ("recall", "right"),
        ("AUROC", "right"),
        ("most often read as", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i, name in enumerate(labels):
        row = confusion[i] if i < len(confusion) else []
        n = sum(row)
        recall = f"{row[i] / n:.2f}" if n else "-"
        others = [(c, labels[j]) for j, c in enumerate(row) if j != i and c > 0]
        worst = max(others) if others else None
        table.add_row(
            name,
            str(n),
            recall,
            f"{auroc[name]:.2f}" if name in auroc else "-",
            f"{worst[1]} ({worst[0]})" if worst else "-",
        )
    console = Console(highlight=False)
    console.print(table)
    console.print(
        f"accuracy {report.accuracy:.3f} (95% interval {lo:.3f}-{hi:.3f}), "
        f"top-3 {report.top3:.3f}, chance {report.chance:.3f}, "
        f"mean AUROC {report.auroc_mean:.3f}",
        markup=False,
    )
    line = f"baselines: majority ({report.majority_label}) {report.majority:.3f}"
    cmp = report.vs_lexical
    if report.lexical is not None and cmp is not None:
        line += (
            f", lexical {report.lexical:.3f} ({report.lexical_kind}); vectors - "
            f"lexical {cmp.diff_mean:+.3f} (95% {cmp.diff_ci[0]:+.3f} to "
            f"{cmp.diff_ci[1]:+.3f}): {cmp.verdict}"
        )
    console.print(line, markup=False)
    geo = report.geometry
    if geo.pc1_valence_r is not None:
        pc2 = geo.pc2_arousal_r if geo.pc2_arousal_r is not None else float("nan")
        console.print(
            f"geometry: PC1 vs valence r {geo.pc1_valence_r:+.2f}, PC2 vs arousal r {pc2:+.2f}",
            markup=False,
        )
    left = report.skipped + report.n_skipped_short
    if left:
        console.print(
            f"LEFT OUT: {left} of {report.n_input} records "
            f"({report.n_skipped_short} with no token from skip "
            f"{report.skip} on, {report.skipped} with a label the set lacks)",
            markup=False,
        )
    console.print(
        f"full report (confusion, logit lens) -> {out}"
        if out
        else "full report: --json (or --out FILE)",
        markup=False,
    )


def _fit_config(opts: dict[str, Any]) -> Any:
    """The fit's :class:`FitConfig` from the command's options; a bad value is one line naming
    its option (``--label-map`` is parsed first: a=b,c=d or a YAML/JSON file)."""
    from pydantic import ValidationError

    from emocurate.configs import FitConfig
    from emocurate.vectors.labelled import parse_label_map

    try:
        return FitConfig.model_validate({**opts, "label_map": parse_label_map(opts["label_map"])})
    except ValidationError as exc:
        field, msg = first_problem(exc)
        raise ConfigError(f"--{field.split('.')[0].replace('_', '-')}: {msg}") from None


def _fit_line(folder: Path, ev: Any, vs: Any, holdout: float) -> str:
    """One fitted set's summary line (with a warning on stderr when nothing was evaluated)."""
    acc = "NOT EVALUATED (no held-out rows)"
    if ev.accuracy is None:
        typer.echo(
            f"warning: {folder}: nothing was evaluated (--holdout {holdout:g}): these "
            "vectors have no held-out accuracy, so nothing shows they read emotions "
            "(curate refuses drops with them unless --flag-only/--force)",
            err=True,
        )
    if ev.accuracy is not None and ev.accuracy_ci is not None:
        lo, hi = ev.accuracy_ci
        acc = (
            f"held-out accuracy {ev.accuracy:.3f} ± {ev.accuracy_sd or 0.0:.3f} "
            f"(95% CI {lo:.3f}-{hi:.3f}, {len(ev.seeds)} splits; chance {ev.chance:.3f}"
            + (f", majority {ev.majority:.3f}" if ev.majority is not None else "")
            + (f", lexical {ev.lexical.mean:.3f}" if ev.lexical is not None else "")
            + ")"
        )
    return (
        f"{folder}: {ev.kind} vectors, {len(vs.names)} emotions, layer {ev.chosen_layer}, "
        f"{acc}; {ev.n_records} records fitted, {ev.n_skipped_short} too short"
        + (
            f", {vs.meta.data_source.n_excluded} rows left out (unusable)"
            if vs.meta.data_source is not None and vs.meta.data_source.n_excluded
            else ""
        )
    )


def _print_fit_summary(out: Path, vs: Any, holdout: float) -> None:
    """A line per fitted set (one, or one per speaker) and the vectors-vs-lexical sentence."""
    from emocurate.artifacts import read_evaluation

    for folder in _speaker_folders(out):
        ev = read_evaluation(folder)
        if ev is None:
            continue
        typer.echo(_fit_line(folder, ev, vs, holdout))
        if ev.vs_lexical is not None:
            typer.echo(f"  {ev.vs_lexical.sentence}")


def fit(
    records_dir: Path | None = typer.Argument(
        None,
        help="Stage folder of Story records (or Dialogue records for speaker-aware vectors); "
        "or give --records FILE.",
    ),
    records_file: str | None = typer.Option(
        fit_default("records"),
        "--records",
        help="Fit on a labelled file instead (JSONL, CSV/TSV or Parquet; bundled:scenarios = "
        "the bundled human-written emotion scenarios, MIT).",
    ),
    text_field: str = typer.Option(
        fit_default("text_field"),
        "--text-field",
        help="With --records: the column holding the text.",
    ),
    label_field: str = typer.Option(
        fit_default("label_field"),
        "--label-field",
        help="With --records: the column holding the emotion label.",
    ),
    id_field: str | None = typer.Option(
        fit_default("id_field"),
        "--id-field",
        help="With --records: the id column (default: id when present).",
    ),
    label_map: str | None = typer.Option(
        fit_default("label_map"),
        "--label-map",
        help="With --records: source label to emotion name, a=b,c=d or a YAML/JSON file "
        "(an empty target leaves those rows out, counted).",
    ),
    data_licence: str | None = typer.Option(
        fit_default("data_licence"),
        "--data-licence",
        help="Licence of the fitted texts, named on the vector card.",
    ),
    model: str = typer.Option(
        fit_default("model"),
        "--model",
        "-m",
        help="Model: a short name (stories260K embedded, smollm2-135m; see `emocurate models`), a Hub id, a local folder or a .gguf file.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder for the vector set and evaluation.json."
    ),
    neutral: Path | None = typer.Option(
        None,
        "--neutral",
        help="Neutral text: a stage folder of neutral dialogues, a JSONL/.txt file, or "
        "bundled:neutral (100 shipped sentences); z-score reference and neutral-PC projection.",
    ),
    layers: str = typer.Option(
        fit_default("layers"),
        "--layers",
        help="auto (sweep, keep the chosen layer), all (sweep, keep all) or a comma list of "
        "layer indices; the layer nearest 2/3 of the depth unless another is significantly "
        "better on held-out rows.",
    ),
    method: str = typer.Option(
        fit_default("method"), "--method", help="mean_diff (anchor recipe), pca or logistic."
    ),
    skip: int | None = typer.Option(
        fit_default("skip"),
        "--skip",
        help="Pool from this token on, exactly (never before a story's generated part); "
        "default 50 for a stage folder (the study), 0 for --records (the whole text).",
    ),
    short: str = typer.Option(
        fit_default("short"),
        "--short",
        help="Records with no token from --skip on: skip (leave out, counted) or clip "
        "(pool from half their length).",
    ),
    pooling: str = typer.Option(
        fit_default("pooling"),
        "--pooling",
        help="mean (from --skip to the end, anchor recipe) or last (final token only).",
    ),
    batch_tokens: int = typer.Option(
        fit_default("batch_tokens"), "--batch-tokens", help="Padded tokens per forward batch."
    ),
    neutral_variance: float = typer.Option(
        fit_default("neutral_variance"),
        "--neutral-variance",
        help="Share of neutral variance whose top PCs are projected out.",
    ),
    standardize: str = typer.Option(
        fit_default("standardize"),
        "--standardize",
        help="none (the study's raw mean difference; massive dimensions are handled by the "
        "neutral-PC projection and never pooling the first token) or dims (differences in "
        "per-dimension standardised coordinates; see docs/vectors.md).",
    ),
    holdout: float = typer.Option(
        fit_default("holdout"),
        "--holdout",
        help="Fraction of records held out in each evaluation split; each emotion then needs at "
        "least 5 usable records (0: no evaluation, with a warning).",
    ),
    seed: int = typer.Option(
        fit_default("seed"), "--seed", help="Seed of the first held-out split."
    ),
    eval_seeds: int = typer.Option(
        fit_default("eval_seeds"),
        "--eval-seeds",
        help="Split seeds of the held-out evaluation (mean ± sd over them).",
    ),
    device: str = typer.Option(
        fit_default("device"), "--device", help="Torch device (cpu, cuda, cuda:1, mps)."
    ),
    dtype: str = typer.Option(
        fit_default("dtype"),
        "--dtype",
        help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16.",
    ),
    device_map: str | None = typer.Option(
        None, "--device-map", help="transformers device_map, e.g. auto for multi-GPU placement."
    ),
    trust_remote_code: bool = typer.Option(
        False,
        "--trust-remote-code",
        help="Run model code from the model repository (off by default).",
    ),
) -> None:
    """Fit emotion vectors from records, choose the layer and evaluate on held-out records.

    \b
    Example:
      emocurate fit runs/validated/kept --model stories260K --neutral runs/neutral --out runs/vectors

    \f
    Long because typer declares every option in the signature; the body is short.
    """
    from emocurate.io import folder_lock
    from emocurate.vectors.fit import fit_vectors, load_labelled, read_fit_records, read_texts
    from emocurate.vectors.models import load_model

    cfg = _fit_config(
        {
            "model": model,
            "layers": layers,
            "method": method,
            "skip": skip,
            "short": short,
            "pooling": pooling,
            "batch_tokens": batch_tokens,
            "neutral_variance": neutral_variance,
            "standardize": standardize,
            "holdout": holdout,
            "seed": seed,
            "eval_seeds": eval_seeds,
            "device": device,
            "dtype": dtype,
            "records": records_file,
            "text_field": text_field,
            "label_field": label_field,
            "id_field": id_field,
            "label_map": label_map,
            "data_licence": data_licence,
        }
    )
    if (records_dir is None) == (records_file is None):
        raise ConfigError(
            "fit: give a stage folder of records or --records FILE (exactly one of them; "
            "see 'emocurate fit --help')"
        )
    # a bad input fails before a model is downloaded
    recs, source = load_labelled(cfg) if records_file else (None, None)
    if records_dir is not None:
        read_fit_records(records_dir)
    if neutral is not None:
        read_texts(neutral)  # a bad neutral input fails before the model loads
    lm = load_model(
        model,
        device=device,
        dtype=dtype,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
    )
    with folder_lock(out):  # one writer per output folder (a second run: one line, pid)
        vs = fit_vectors(
            records_dir or (source.name if source else ""),
            cfg,
            out,
            neutral_dir=neutral,
            lm=lm,
            records=recs,
            data_source=source,
        )
    _print_fit_summary(out, vs, holdout)


def _set_folder(vectors_dir: Path, kind: str | None) -> Path:
    """The folder of the set ``kind`` names (its speaker subfolder when there is one), where its
    train ids, transfer evaluations and steering report live."""
    from emocurate.artifacts import SPEAKER_SUBDIRS
    from emocurate.vectors.vectorset import META

    if kind is not None and (vectors_dir / SPEAKER_SUBDIRS.get(kind, kind) / META).exists():
        return vectors_dir / SPEAKER_SUBDIRS.get(kind, kind)
    return vectors_dir


def _read_eval_records(
    on: str, text_field: str, label_field: str, label_map: str | None
) -> list[Any]:
    """``--on``: a labelled file (or bundled:scenarios, its warnings on stderr) or a stage folder."""
    from emocurate.vectors.fit import read_fit_records
    from emocurate.vectors.labelled import BUNDLED_SCENARIOS, parse_label_map, read_labelled

    on_path = Path(on)
    if on == BUNDLED_SCENARIOS or on_path.is_file():
        got = read_labelled(
            on,
            text_field=text_field,
            label_field=label_field,
            label_map=parse_label_map(label_map),
        )
        for line in got.warnings:
            typer.echo(f"warning: {line}", err=True)
        return list(got.records)
    return list(read_fit_records(on_path))


def _warn_evaluation(report: TransferReport) -> None:
    """One stderr line each: records used in the fit, and records left out (and why)."""
    if report.overlap_warning:
        typer.echo(f"warning: {report.overlap_warning}", err=True)
    if report.n_skipped_short:
        typer.echo(
            f"warning: {report.n_skipped_short} of {report.n_input} records left out: "
            f"no token from --skip {report.skip} on (pass --skip 0 to read whole texts)",
            err=True,
        )
    if report.skipped:
        typer.echo(
            f"warning: {report.skipped} of {report.n_input} records left out: their "
            "label is not one of the set's emotions",
            err=True,
        )


def _save_transfer(report: TransferReport, on: str, set_dir: Path) -> None:
    """``--save``: the headline in ``transfer/<name>.json``, named after the ``--on`` source."""
    from emocurate.artifacts import TransferEvaluation

    stem = on.split(":", 1)[1] if on.startswith("bundled:") else Path(on).name.split(".")[0]
    target = TransferEvaluation.from_report(report).save(set_dir, stem)
    typer.echo(f"saved -> {target}", err=True)


def _check_steer_options(
    prompt: str | None,
    strength: float | None,
    emotion: list[str],
    *,
    dose: bool,
    as_json: bool,
    steps: int,
) -> None:
    """The option combinations ``steer`` refuses, each with one line, before a model loads."""
    if prompt is None and not dose:
        raise ConfigError("pass --prompt to generate, or --dose-response to measure steering")
    if prompt is not None and (strength is None or len(emotion) != 1):
        raise ConfigError("generation needs --strength and exactly one --emotion")
    if as_json and (prompt is not None or not dose):
        raise ConfigError("--json prints the dose-response report: use it without --prompt")
    if dose and steps < 3:
        raise ConfigError(f"--steps must be at least 3 (got {steps})")


def evaluate_cmd(
    vectors_dir: Path = typer.Argument(..., help="A vector set folder (from `emocurate fit`)."),
    on: str = typer.Option(
        ...,
        "--on",
        help="Stage folder of labelled Story (or Dialogue) records, or a labelled file "
        "(JSONL/CSV/Parquet, bundled:scenarios) read with --text-field/--label-field.",
    ),
    text_field: str = typer.Option("text", "--text-field", help="With a file: text column."),
    label_field: str = typer.Option("label", "--label-field", help="With a file: label column."),
    label_map: str | None = typer.Option(
        None, "--label-map", help="With a file: source label to emotion name, a=b,c=d or YAML."
    ),
    skip: int | None = typer.Option(
        None,
        "--skip",
        help="Pool from this token on (default: the set's own skip); records with no token "
        "there are left out and counted (0: the whole text, a document-level reading).",
    ),
    layer: int | None = typer.Option(
        None, "--layer", help="Layer to evaluate (default: the set's chosen layer)."
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="human or assistant, for a speaker-aware fit folder."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model to load (default: the one the set was fitted on)."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    out: Path | None = typer.Option(
        None, "--out", help="Also write the full report JSON to this file."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the full report as JSON instead of the summary table."
    ),
    save: bool = typer.Option(
        False,
        "--save",
        help="Keep the headline (accuracy, AUROC, baselines, left-out counts) in "
        "VECTORS/transfer/<name>.json, where the vector card lists it.",
    ),
) -> None:
    """Accuracy, top-3, confusion, AUROC, geometry and logit lens of a vector set on records.

    Prints a summary (accuracy with its interval beside chance, and per emotion: records,
    recall, AUROC, most frequent confusion); --json prints the whole report for machines.

    Warns (one line on stderr, ``overlap_warning`` in the report) when records were used to
    fit the set (ids or texts in its ``train_ids.json``).

    \b
    Example:
      emocurate vectors evaluate runs/vectors --on runs/validated/kept

    \f
    Long because typer declares every option in the signature; the body is short.
    """
    from emocurate.vectors.evaluate import evaluate
    from emocurate.vectors.fit import fitted_texts, load_train_ids
    from emocurate.vectors.models import load_model
    from emocurate.vectors.vectorset import VectorSet

    vs = VectorSet.load(vectors_dir, kind=kind)
    set_dir = _set_folder(vectors_dir, kind)
    records = _read_eval_records(on, text_field, label_field, label_map)
    lm = load_model(model or vs.meta.model_id, device=device)
    report = evaluate(
        vs,
        lm,
        records,
        layer=layer,
        train_ids=load_train_ids(set_dir),
        skip=skip,
        lexical_train=fitted_texts(set_dir, vs),
    )
    _warn_evaluation(report)
    report.source = on
    text = report.as_json()
    if out:
        out.write_text(text + "\n")
    if save:
        _save_transfer(report, on, set_dir)
    if as_json:
        typer.echo(text)
        return
    _print_evaluation(report, out)


def export_cmd(
    vectors_dir: Path = typer.Argument(..., help="A vector set folder (from `emocurate fit`)."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output .gguf file (with --emotion), or a folder that "
        "receives <emotion>.gguf for every emotion.",
    ),
    emotion: str | None = typer.Option(
        None, "--emotion", "-e", help="Emotion to export (default: all, one file each)."
    ),
    scale: str = typer.Option(
        "residual_norm",
        "--scale",
        help="residual_norm (strength 1 = one mean residual "
        "norm, matching `emocurate steer`), unit or raw.",
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="human or assistant, for a speaker-aware fit folder."
    ),
) -> None:
    """Export directions as llama.cpp control vectors (one direction tensor per layer).

    \b
    Example:
      emocurate vectors export-gguf runs/vectors --emotion happy --out happy.gguf
    """
    from emocurate.vectors.export import export_all, export_gguf, gguf_file_name
    from emocurate.vectors.vectorset import VectorSet

    if scale not in ("residual_norm", "unit", "raw"):
        raise ConfigError(f"--scale must be residual_norm, unit or raw, not '{scale}'")
    vs = VectorSet.load(vectors_dir, kind=kind)
    if emotion is not None or len(vs.names) == 1:
        name = emotion or vs.names[0]
        path = out if out.suffix == ".gguf" else out / gguf_file_name(name)
        typer.echo(str(export_gguf(vs, path, name, scale=scale)))  # type: ignore[arg-type]
        return
    if out.suffix == ".gguf":
        raise ConfigError(
            "--out names one file: pass --emotion, or give a folder to export every emotion"
        )
    export_all(vs, out, scale=scale)  # type: ignore[arg-type]
    typer.echo(f"{len(vs.names)} control vectors -> {out}")


def steer_cmd(
    vectors_dir: Path = typer.Argument(..., help="A vector set folder (from `emocurate fit`)."),
    emotion: list[str] = typer.Option(
        ...,
        "--emotion",
        "-e",
        help="Emotion direction to steer toward (repeat it to measure several).",
    ),
    strength: float | None = typer.Option(
        None,
        "--strength",
        "-s",
        help="Fraction of the mean residual norm at the layer to add (negative steers away); "
        "with --dose-response, the grid's half-width (default 0.5).",
    ),
    prompt: str | None = typer.Option(
        None, "--prompt", "-p", help="Text to continue (needed unless --dose-response)."
    ),
    layer: int | None = typer.Option(
        None, "--layer", help="Layer to steer (default: the set's chosen layer)."
    ),
    max_new_tokens: int | None = typer.Option(
        None,
        "--max-new-tokens",
        help="Tokens to generate (default 60; 24 per prompt and strength for --dose-response).",
    ),
    temperature: float = typer.Option(
        0.0, "--temperature", help="Sampling temperature (0 = greedy)."
    ),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    kind: str | None = typer.Option(
        None, "--kind", help="human or assistant, for a speaker-aware fit folder."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model to load (default: the one the set was fitted on)."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    dose: bool = typer.Option(
        False,
        "--dose-response",
        help="Measure the dose-response over strengths -S..+S (S = --strength or 0.5): the "
        "vector's projection read back on greedy continuations and the log-probability of "
        "the emotion's word forms, each with Spearman rho, p, n and a pass/fail verdict.",
    ),
    steps: int = typer.Option(
        11, "--steps", help="Number of strengths in the dose-response grid (odd includes 0)."
    ),
    save: bool = typer.Option(
        True,
        "--save/--no-save",
        help="Write the dose-response to steering.json in the vector set folder "
        "(the vector card reads it).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the dose-response report as JSON instead of a table."
    ),
) -> None:
    """Generate while adding an emotion vector to the residual stream, or measure whether
    steering along it moves the model (--dose-response).

    \b
    Example:
      emocurate steer runs/vectors -e happy -e sad --dose-response

    \f
    Long because typer declares every option in the signature; the body is short.
    """
    from emocurate.vectors.models import load_model
    from emocurate.vectors.steer import generate, measure_steering, save_steering
    from emocurate.vectors.vectorset import VectorSet

    _check_steer_options(prompt, strength, emotion, dose=dose, as_json=as_json, steps=steps)
    vs = VectorSet.load(vectors_dir, kind=kind)
    for name in emotion:
        vs.index(name)
    lm = load_model(model or vs.meta.model_id, device=device)
    if prompt is not None and strength is not None:
        typer.echo(
            generate(
                lm,
                vs,
                emotion[0],
                strength,
                prompt,
                layer=layer,
                max_new_tokens=max_new_tokens or 60,
                temperature=temperature,
                seed=seed,
            )
        )
    if not dose:
        return
    half = abs(strength) if strength else 0.5
    grid = [round(-half + 2 * half * i / (steps - 1), 6) for i in range(steps)]
    report = measure_steering(
        lm, vs, emotion, grid, layer=layer, max_new_tokens=max_new_tokens or 24
    )
    if save:
        path = save_steering(report, _set_folder(vectors_dir, kind))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    from rich.console import Console

    from emocurate.vectors.steer import print_steering

    console = Console(highlight=False)
    print_steering(report, console)
    if save:
        console.print(f"saved {path}")


def register(app: typer.Typer) -> None:
    """Add ``fit``, ``steer`` and the ``vectors`` group."""
    group = typer.Typer(
        help="Evaluate and export fitted emotion vector sets.\n\n"
        "\b\nExample:\n  emocurate vectors evaluate runs/vectors --on runs/validated/kept",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    app.add_typer(group, name="vectors")

    app.command("fit")(fit)
    group.command("evaluate")(evaluate_cmd)
    group.command("export-gguf")(export_cmd)
    app.command("steer")(steer_cmd)
