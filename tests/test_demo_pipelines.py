"""The demo pipelines: SmolLM2 by default, stories260K with --tiny; the transfer 'evaluate' stage."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from emocurate import pipeline as pl
from emocurate.artifacts import read_transfers
from emocurate.cards.report import write_report
from emocurate.cards.vector_card import write_vector_card
from emocurate.cli import app
from emocurate.config import parse_pipeline
from emocurate.pipeline import build_stages, bundled_path, run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_smollm2_and_tiny_runs_stories260k(tmp_path, monkeypatch):
    seen: list = []

    def fake_run(cfg, **kw):
        seen.append(cfg)
        return pl.PipelineResult(out=tmp_path)

    monkeypatch.setattr(pl, "run_pipeline", fake_run)
    runner = CliRunner()
    assert runner.invoke(app, ["demo", "--out", str(tmp_path / "a")]).exit_code == 0
    assert runner.invoke(app, ["demo", "--tiny", "--out", str(tmp_path / "b")]).exit_code == 0
    real, tiny = seen
    assert real.generate.model == "smollm2-135m" and real.generate.prompt_style == "simple"
    assert real.fit.model == "smollm2-135m" and real.evaluate is not None
    assert [s.records for s in real.evaluate.sets] == ["bundled:scenarios"]
    assert tiny.generate.model == "stories260K" and tiny.fit.model == "stories260K"
    names = [s.name for s in build_stages(real, tmp_path / "r", tmp_path)]
    assert names == [
        "generate",
        "neutral",
        "validate",
        "fit",
        "evaluate",
        "calibrate",
        "score",
        "curate",
        "cards",
    ]


def test_examples_smollm2_is_the_demo_pipeline():
    assert (ROOT / "examples" / "smollm2.yaml").read_text() == bundled_path(
        "bundled:smollm2"
    ).read_text()


def test_evaluate_stage_reads_the_vectors_on_a_labelled_file(tmp_path):
    """Transfer on stories260K: vectors fitted on generated stories, read on a labelled file
    with its own label names (mapped), a fixed per-label sample, the report written."""
    rows = [
        {"sentence": f"Tom was so glad, he laughed and played with the ball {i}.", "y": "joy"}
        for i in range(6)
    ] + [
        {"sentence": f"Lily cried because her toy was lost and broken {i}.", "y": "sadness"}
        for i in range(6)
    ]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = parse_pipeline(
        {
            "out": str(tmp_path / "run"),
            "generate": {
                "kind": "stories",
                "backend": "transformers",
                "model": "stories260K",
                "emotions": "happy,sad",
                "topics": "2",
                "per_topic": 4,
                "seed": 0,
            },
            "fit": {"model": "stories260K", "layers": "auto"},
            "evaluate": {
                "sets": [
                    {
                        "name": "mine",
                        "records": "labelled.jsonl",
                        "text_field": "sentence",
                        "label_field": "y",
                        "label_map": {"joy": "happy", "sadness": "sad"},
                        "per_label": 4,
                    }
                ]
            },
            "cards": None,
        }
    )
    res = run_pipeline(cfg, base_dir=tmp_path, log=lambda m: None)
    stage = [s for s in res.stages if s.name == "evaluate"][0]
    (report,) = read_transfers(tmp_path / "run" / "evaluation")  # typed, in its own folder
    assert report.n_input == 8 and report.n + report.n_skipped_short == 8
    assert 0.0 <= report.accuracy <= 1.0 and report.majority >= 0.5
    # the vector card lists the stage's evaluation beside those saved in the set
    card = write_vector_card(
        tmp_path / "run" / "vectors",
        out_dir=tmp_path / "card",
        transfer_dir=tmp_path / "run" / "evaluation",
    )
    assert report.source in card.read_text()
    html = write_report(
        tmp_path / "report.html",
        vectors_dir=tmp_path / "run" / "vectors",
        transfer_dir=tmp_path / "run" / "evaluation",
    ).read_text()
    assert 'id="transfer"' in html and report.source in html and f"{report.accuracy:.3f}" in html
    assert "majority" in stage.summary and "mine: accuracy" in stage.summary
    # a rerun does nothing; an edited file reruns the stage
    again = run_pipeline(cfg, base_dir=tmp_path, log=lambda m: None)
    assert not again.did_work
    data.write_text(data.read_text() + json.dumps(rows[0] | {"sentence": "Tom smiled."}) + "\n")
    third = run_pipeline(cfg, base_dir=tmp_path, log=lambda m: None)
    assert [s.name for s in third.stages if not s.skipped] == ["evaluate"]


def test_demo_yaml_parses():
    parse_pipeline(yaml.safe_load(bundled_path("bundled:smollm2").read_text()))
