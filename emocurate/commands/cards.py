"""CLI for cards, the HTML report and publishing: ``card``, ``report``, ``push``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emocurate.errors import InputError


def card(
    folder: Path = typer.Argument(
        ...,
        help="A dataset folder (data/*.parquet, or a validation folder) "
        "or a vector set folder (vectors.safetensors + vectorset.json).",
    ),
    generation: Path | None = typer.Option(
        None,
        "--generation",
        help="Generation stage folder: totals over every generated record (dataset cards).",
    ),
    validation: Path | None = typer.Option(
        None,
        "--validation",
        help="Validation stage folder: the funnel "
        "(dataset cards; found automatically for VALIDATION/kept).",
    ),
    training: Path | None = typer.Option(
        None, "--training", help="Dataset the vectors were fitted on (vector cards)."
    ),
    repo_id: str | None = typer.Option(
        None,
        "--repo-id",
        help="Hub id ORG/NAME shown in the card's loading snippet (dataset cards).",
    ),
    license: str = typer.Option(
        "cc-by-4.0",
        "--license",
        help="Hub license id for a new dataset card (an existing card keeps its own).",
    ),
    pretty_name: str | None = typer.Option(
        None, "--pretty-name", help="Title of the dataset card."
    ),
) -> None:
    """Write or update FOLDER/README.md: a dataset card or a vector card (user edits are kept).

    \b
    Example:
      emocurate card runs/validated/kept --generation runs/stories
    """
    from emocurate.cards.dataset_card import write_dataset_card
    from emocurate.cards.hub import detect_kind
    from emocurate.cards.vector_card import write_vector_card

    if detect_kind(folder) == "vectors":
        path = write_vector_card(folder, training_dir=training)
    else:
        path = write_dataset_card(
            folder,
            generation_dir=generation,
            validation_dir=validation,
            repo_id=repo_id,
            license=license,
            pretty_name=pretty_name,
        )
    typer.echo(f"wrote {path}")


def report(
    out: Path = typer.Option(
        ..., "--out", "-o", help="HTML file to write (one self-contained file)."
    ),
    vectors: Path | None = typer.Option(
        None, "--vectors", help="Vector set folder: emotion geometry."
    ),
    scores: Path | None = typer.Option(
        None,
        "--scores",
        help="Corpus scores folder: metric distributions, flagged documents and token heatmaps.",
    ),
    validation: Path | None = typer.Option(
        None, "--validation", help="Validation folder: the funnel."
    ),
    generation: Path | None = typer.Option(
        None, "--generation", help="Generation folder: records, tokens and cost."
    ),
    curated: Path | None = typer.Option(
        None, "--curated", help="Curate folder: what each policy rule did, the guardrail."
    ),
    title: str = typer.Option("emocurate report", "--title", help="Page title."),
    emotions: str | None = typer.Option(
        None,
        "--emotions",
        help="Comma list of emotions (or distress, "
        "valence, arousal, calm) to show in the token heatmaps.",
    ),
    max_heatmaps: int = typer.Option(
        8, "--max-heatmaps", min=0, help="Documents with token heatmaps (flagged first)."
    ),
) -> None:
    """Write the curator's HTML report (works offline: inline SVG, no scripts).

    \b
    Example:
      emocurate report --out report.html --vectors runs/vectors --scores runs/scores
    """
    from emocurate.cards.report import write_report

    if not any((vectors, scores, validation, generation, curated)):
        raise InputError(
            "report: give at least one of --vectors, --scores, --validation, --generation, "
            "--curated"
        )
    wanted = [e.strip() for e in emotions.split(",") if e.strip()] if emotions else None
    path = write_report(
        out,
        vectors_dir=vectors,
        scores_dir=scores,
        validation_dir=validation,
        generation_dir=generation,
        curated_dir=curated,
        title=title,
        emotions=wanted,
        max_heatmaps=max_heatmaps,
    )
    typer.echo(f"wrote {path}")


def push(
    folder: Path = typer.Argument(..., help="Dataset folder or vector set folder to publish."),
    repo_id: str = typer.Option(
        ..., "--repo-id", help="Hub repository ORG/NAME (created if missing)."
    ),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
    revision: str | None = typer.Option(
        None, "--revision", help="Branch to commit to (created if missing; default main)."
    ),
    dry_run: Path | None = typer.Option(
        None,
        "--dry-run",
        help="Write the exact repository tree to this "
        "folder and check it loads, instead of uploading. The folder must be new, empty or "
        "made by an earlier dry run (marker file), and outside FOLDER; FOLDER is only read.",
    ),
) -> None:
    """Publish to the Hugging Face Hub (token from HF_TOKEN or `hf auth login`; never written or logged).

    \b
    Example:
      emocurate push runs/validated/kept --repo-id me/emotion-stories --dry-run tree
    """
    from emocurate.cards.hub import push as do_push

    result = do_push(folder, repo_id, private=private, revision=revision, dry_run=dry_run)
    where = (
        f"dry run written to {result['dry_run']}" if dry_run else f"pushed to {result.get('url')}"
    )
    typer.echo(f"{result['kind']} {repo_id}: {len(result['files'])} files, {where}")
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "files"}, sort_keys=True))


def register(app: typer.Typer) -> None:
    """Add ``card``, ``report`` and ``push``."""

    app.command("card")(card)
    app.command("report")(report)
    app.command("push")(push)
