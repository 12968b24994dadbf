"""End to end: the offline demo pipeline (smaller configuration) and pipeline reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emocurate.config import parse_pipeline
from emocurate.pipeline import MARKER, build_stages, bundled_path, foreign_files, run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def _small_config(out: Path):
    data = yaml.safe_load(bundled_path("bundled:offline").read_text())
    data["out"] = str(out)
    data["generate"]["topics"] = "2"
    data["generate"]["per_topic"] = 4  # fit's held-out evaluation needs 5 usable per emotion
    data["neutral"]["per_topic"] = 3
    data["steer"]["emotions"] = ["happy", "sad"]
    data["steer"]["steps"] = 3
    return parse_pipeline(data)


def test_examples_offline_is_the_demo_pipeline():
    assert (ROOT / "examples" / "offline.yaml").read_text() == bundled_path(
        "bundled:offline"
    ).read_text()
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        parse_pipeline(yaml.safe_load(example.read_text()), where=str(example))


@pytest.mark.slow
def test_offline_pipeline_end_to_end_and_rerun(tmp_path):
    from datasets import load_dataset

    from emocurate.vectors.vectorset import VectorSet

    out = tmp_path / "demo"
    cfg = _small_config(out)
    logs: list[str] = []
    res = run_pipeline(cfg, log=logs.append)
    assert [s.name for s in res.stages] == [
        "generate",
        "neutral",
        "validate",
        "fit",
        "calibrate",
        "score",
        "curate",
        "cards",
    ]
    assert res.did_work

    # stories dataset readable by datasets, with every generated row accounted for
    gen_manifest = json.loads((out / "stories" / "manifest.json").read_text())
    kept = load_dataset("parquet", data_dir=str(out / "validated" / "kept" / "data"), split="train")
    rejected_dir = out / "validated" / "rejected" / "data"
    n_rej = (
        len(load_dataset("parquet", data_dir=str(rejected_dir), split="train"))
        if any(rejected_dir.glob("*.parquet"))
        else 0
    )
    assert len(kept) + n_rej == gen_manifest["records"]
    # every planned request ends as a record or as a failure with a reason
    assert gen_manifest["planned_requests"] == 6 * 2 * 4
    assert gen_manifest["records"] + len(gen_manifest["failures"]) == 6 * 2 * 4
    assert all(f["reason"] for f in gen_manifest["failures"])
    assert set(kept["emotion"]) <= {"happy", "sad", "scared", "angry", "excited", "proud"}
    params = json.loads(kept[0]["provenance"]["params"])
    assert params["stop_reason"] in {"max_tokens", "length", "stop", "eos", "end_turn"}, params

    # vectors: safetensors + JSON metadata that load back
    vs = VectorSet.load(out / "vectors")
    assert vs.meta.model_id == "stories260K" and len(vs.names) >= 2
    assert (out / "vectors" / "vectorset.json").exists()

    # scores parquet, dataset card and report
    scores = load_dataset("parquet", data_dir=str(out / "scores" / "data"), split="train")
    assert len(scores) > 0
    card = (out / "report" / "dataset" / "README.md").read_text()
    assert not (
        out / "validated" / "kept" / "README.md"
    ).exists()  # stages write only their own folders
    assert card.startswith("---") and str(len(kept)) in card
    # the study's recipe, stated in the set: pooling from token skip after the prompt's
    # opening, neutral components projected, the layer rule, no fitted text naming its label
    assert vs.meta.skip == 50 and vs.meta.short == "skip"
    assert vs.meta.neutral_pcs and all(k > 0 for k in vs.meta.neutral_pcs.values())
    assert "two thirds" in vs.meta.layer_selection or "2/3" in vs.meta.layer_selection
    assert vs.meta.label_leak_share == 0.0
    assert (out / "vectors" / "neutral" / "neutral.jsonl").exists()
    # the calibrate stage's own folder (emocurate score alone reads VECTORS/calibration.json)
    assert (out / "calibration" / "calibration.json").exists()
    assert not (out / "vectors" / "calibration.json").exists()
    assert set(json.loads((out / "vectors" / "steering.json").read_text())["emotions"]) == {
        "happy",
        "sad",
    }
    vcard = (out / "report" / "vectors" / "README.md").read_text()
    assert "lexical" in vcard and "majority" in vcard and "## Steering" in vcard

    # the report supports a decision: evaluation with baselines, thresholds, curation
    html = (out / "report" / "report.html").read_text()
    assert "<svg" in html and "emocurate" in html
    assert 'id="evaluation"' in html and "lexical baseline" in html and "majority class" in html
    assert html.count('class="steer-row"') == 2
    assert "Flag thresholds: calibrated" in html and "stroke-dasharray" in html
    assert 'id="curation"' in html and "Guardrail:" in html and 'class="rule-row"' in html
    assert 'class="flag-row"' in html or "No threshold was reached" in html
    assert len(html.encode()) <= 2_000_000
    curated = json.loads((out / "curated" / "manifest.json").read_text())
    assert curated["with_text"] and curated["guardrail"]["decision"] in ("allowed", "flag-only")
    # every stage folder loads with a plain load_dataset(DIR)
    for d in ["stories", "validated/kept", "scores", "curated"]:
        assert len(load_dataset(str(out / d))["train"]) > 0, d
    # and every Parquet folder the demo writes loads on its own (issue 18: an empty
    # excluded.parquet failed with ArrowInvalid); empty tables are not written
    for folder in sorted({f.parent for f in out.rglob("*.parquet")}):
        ds = load_dataset("parquet", data_dir=str(folder), split="train")
        assert len(ds) > 0, folder
    assert all(
        (out / d / MARKER).exists()
        for d in [
            "stories",
            "neutral",
            "validated",
            "vectors",
            "calibration",
            "scores",
            "curated",
            "report",
        ]
    )
    # no stage wrote into another's folder: each folder holds only what its stage declares,
    # and every file of the run lies in a stage's folder
    stages = build_stages(_small_config(out), out, ROOT)
    assert {s.name: foreign_files(s) for s in stages} == {s.name: [] for s in stages}
    folders = {s.path for s in stages}
    assert [p for p in out.rglob("*") if p.is_file() and not folders & set(p.parents)] == []

    # a rerun does no work and changes nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    res2 = run_pipeline(_small_config(out), log=logs.append)
    assert not res2.did_work
    assert all(s.skipped for s in res2.stages)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_changed_stage_config_reruns_only_downstream(tmp_path):
    """A finished stage is skipped; one whose config changed (and everything after) is redone."""
    out = tmp_path / "p"
    data = {
        "out": str(out),
        "generate": {
            "kind": "stories",
            "backend": "transformers",
            "model": "stories260K",
            "emotions": "happy,sad",
            "topics": "1",
            "per_topic": 2,
            "seed": 0,
        },
        "validate": {"validators": ["rules"]},
        "cards": None,
    }
    r1 = run_pipeline(parse_pipeline(data), log=lambda m: None)
    assert [s.skipped for s in r1.stages] == [False, False]
    data["validate"] = {"validators": ["rules", "leakage"]}
    r2 = run_pipeline(parse_pipeline(data), log=lambda m: None)
    assert [(s.name, s.skipped) for s in r2.stages] == [("generate", True), ("validate", False)]


def test_run_writes_out_relative_to_the_current_directory(tmp_path, monkeypatch):
    """`emocurate run examples/x.yaml` writes into ./OUT, never into examples/OUT."""
    from emocurate.config import load_pipeline

    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "x.yaml").write_text("out: runs/x\ncards: null\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg, base = load_pipeline(Path("..") / "examples" / "x.yaml")
    res = run_pipeline(cfg, base_dir=base, log=lambda m: None)
    assert Path(res.out).resolve() == (work / "runs" / "x").resolve()
    assert (work / "runs" / "x").is_dir()
    assert not (examples / "runs").exists()
