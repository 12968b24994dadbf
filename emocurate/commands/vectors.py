"""CLI commands for the vectors stage: ``fit``, ``steer`` and ``vectors evaluate|export-gguf``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emocurate.errors import ConfigError, first_problem


def _speaker_folders(path: Path) -> list[Path]:
    """The vector set folders under a fit output (itself, or its speaker subfolders)."""
    from emocurate.vectors.vectorset import META

    if (path / META).exists():
        return [path]
    subs = [path / s for s in ("human", "assistant") if (path / s / META).exists()]
    return subs or [path]


def register(app: typer.Typer) -> None:
    """Add ``fit``, ``steer`` and the ``vectors`` group."""
    group = typer.Typer(
        help="Evaluate and export fitted emotion vector sets.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    app.add_typer(group, name="vectors")

    @app.command("fit")
    def fit(
        records_dir: Path = typer.Argument(
            ...,
            help="Stage folder of Story records (or Dialogue records for speaker-aware vectors).",
        ),
        model: str = typer.Option(
            "stories260K",
            "--model",
            "-m",
            help="Model: stories260K (embedded), a Hub id, a local folder or a .gguf file.",
        ),
        out: Path = typer.Option(
            ..., "--out", "-o", help="Output folder for the vector set and evaluation.json."
        ),
        neutral: Path | None = typer.Option(
            None,
            "--neutral",
            help="Stage folder of neutral dialogues: z-score reference and neutral-PC projection.",
        ),
        layers: str = typer.Option(
            "auto",
            "--layers",
            help="auto (sweep, keep best), all (sweep, keep all) or a comma list of layer indices.",
        ),
        method: str = typer.Option(
            "mean_diff", "--method", help="mean_diff (anchor recipe), pca or logistic."
        ),
        skip: int = typer.Option(
            50, "--skip", help="Pool from this token on (clipped to half of short texts)."
        ),
        pooling: str = typer.Option(
            "mean",
            "--pooling",
            help="mean (from --skip to the end, anchor recipe) or last (final token only).",
        ),
        batch_tokens: int = typer.Option(
            8192, "--batch-tokens", help="Padded tokens per forward batch."
        ),
        neutral_variance: float = typer.Option(
            0.5,
            "--neutral-variance",
            help="Share of neutral variance whose top PCs are projected out.",
        ),
        holdout: float = typer.Option(
            0.2, "--holdout", help="Fraction of records held out for the layer sweep."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the held-out split."),
        device: str = typer.Option(
            "cpu", "--device", help="Torch device (cpu, cuda, cuda:1, mps)."
        ),
        dtype: str = typer.Option(
            "auto", "--dtype", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16."
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
        """Fit emotion vectors from records, choose the layer and evaluate on held-out records."""
        from pydantic import ValidationError

        from emocurate.io import parquet_files
        from emocurate.vectors.fit import FitConfig, fit_vectors, read_fit_records
        from emocurate.vectors.models import load_model

        try:
            cfg = FitConfig.model_validate(
                {
                    "model": model,
                    "layers": layers,
                    "method": method,
                    "skip": skip,
                    "pooling": pooling,
                    "batch_tokens": batch_tokens,
                    "neutral_variance": neutral_variance,
                    "holdout": holdout,
                    "seed": seed,
                    "device": device,
                    "dtype": dtype,
                }
            )
        except ValidationError as exc:
            field, msg = first_problem(exc)
            raise ConfigError(f"--{field.split('.')[0].replace('_', '-')}: {msg}") from None
        read_fit_records(records_dir)  # a bad input folder fails before a model is downloaded
        if neutral is not None:
            parquet_files(neutral)
        lm = load_model(
            model,
            device=device,
            dtype=dtype,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
        vs = fit_vectors(records_dir, cfg, out, neutral_dir=neutral, lm=lm)
        for folder in _speaker_folders(out):
            ev = json.loads((folder / "evaluation.json").read_text())
            acc = (
                f"held-out accuracy {ev['accuracy']:.3f} (chance {ev['chance']:.3f})"
                if "accuracy" in ev
                else "no held-out"
            )
            typer.echo(
                f"{folder}: {ev['kind']} vectors, {len(vs.names)} emotions, layer {ev['chosen_layer']} "
                f"({ev['layer_selection']}), {acc}"
            )

    @group.command("evaluate")
    def evaluate_cmd(
        vectors_dir: Path = typer.Argument(..., help="A vector set folder (from `emocurate fit`)."),
        on: Path = typer.Option(
            ..., "--on", help="Stage folder of labelled Story (or Dialogue) records."
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
            None, "--out", help="Write the report JSON here (default: print it)."
        ),
    ) -> None:
        """Held-out accuracy, top-3, confusion, AUROC, geometry and logit lens of a vector set."""
        from emocurate.vectors.evaluate import evaluate
        from emocurate.vectors.fit import read_fit_records
        from emocurate.vectors.models import load_model
        from emocurate.vectors.vectorset import VectorSet

        vs = VectorSet.load(vectors_dir, kind=kind)
        lm = load_model(model or vs.meta.model_id, device=device)
        report = evaluate(vs, lm, read_fit_records(on), layer=layer)  # type: ignore[arg-type]
        text = json.dumps(report, indent=2, default=float)
        if out:
            out.write_text(text + "\n")
            typer.echo(
                f"accuracy {report['accuracy']:.3f} (chance {report['chance']:.3f}) on {report['n']} records -> {out}"
            )
        else:
            typer.echo(text)

    @group.command("export-gguf")
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
        """Export directions as llama.cpp control vectors (one direction tensor per layer)."""
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

    @app.command("steer")
    def steer_cmd(
        vectors_dir: Path = typer.Argument(..., help="A vector set folder (from `emocurate fit`)."),
        emotion: str = typer.Option(
            ..., "--emotion", "-e", help="Emotion direction to steer toward."
        ),
        strength: float = typer.Option(
            ...,
            "--strength",
            "-s",
            help="Multiple of the mean residual norm to add (negative steers away).",
        ),
        prompt: str = typer.Option(..., "--prompt", "-p", help="Text to continue."),
        layer: int | None = typer.Option(
            None, "--layer", help="Layer to steer (default: the set's chosen layer)."
        ),
        max_new_tokens: int = typer.Option(60, "--max-new-tokens", help="Tokens to generate."),
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
            help="Also print the emotion words' mean log-probability "
            "at strengths -S, -S/2, 0, S/2, S.",
        ),
    ) -> None:
        """Generate a continuation while adding an emotion vector to the residual stream."""
        from emocurate.vectors.models import load_model
        from emocurate.vectors.steer import dose_response, generate
        from emocurate.vectors.vectorset import VectorSet

        vs = VectorSet.load(vectors_dir, kind=kind)
        vs.index(emotion)
        lm = load_model(model or vs.meta.model_id, device=device)
        typer.echo(
            generate(
                lm,
                vs,
                emotion,
                strength,
                prompt,
                layer=layer,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=seed,
            )
        )
        if dose:
            s = abs(strength) or 1.0
            for row in dose_response(lm, vs, emotion, [-s, -s / 2, 0.0, s / 2, s], layer=layer):
                typer.echo(f"strength {row['strength']:+.2f}: mean log-prob {row['logprob']:.3f}")
