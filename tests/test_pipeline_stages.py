"""Stages as objects: a rerun redoes exactly the stages downstream of a change, cards included.

The graph tests replace each stage's ``run`` with a stub that writes one file, so they check
the fingerprints and the runner (fast); the last tests run real stages end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emocurate import pipeline as pl
from emocurate.artifacts import CardsManifest
from emocurate.config import parse_pipeline
from emocurate.errors import ConfigError
from emocurate.pipeline import MARKER, build_stages, foreign_files, run_pipeline

ALL = ["generate", "neutral", "validate", "fit", "calibrate", "score", "curate", "cards"]


def _config(tmp: Path) -> dict:
    corpus = tmp / "corpus.jsonl"
    if not corpus.exists():
        corpus.write_text(json.dumps({"text": "She was happy at last."}) + "\n")
    policy = tmp / "policy.yaml"
    if not policy.exists():
        policy.write_text("rules: []\n")
    gen = {
        "kind": "stories",
        "backend": "transformers",
        "model": "stories260K",
        "emotions": "happy,sad",
        "topics": "1",
        "per_topic": 2,
        "seed": 0,
    }
    return {
        "out": str(tmp / "run"),
        "generate": gen,
        "neutral": {**gen, "kind": "neutral"},
        "validate": {"validators": ["rules"]},
        "fit": {"model": "stories260K"},
        "score": {"corpus": [str(corpus)]},
        "curate": {"policy": str(policy)},
    }


@pytest.fixture()
def stub_runs(monkeypatch):
    """Every stage's run() writes one file into its own folder; its summary is its name."""
    for cls in pl.STAGES:

        def run(self: pl.Stage) -> CardsManifest:
            (self.path / "out.txt").write_text(self.name)
            return CardsManifest()

        monkeypatch.setattr(cls, "run", run)
        monkeypatch.setattr(cls, "summary", lambda self, artifact: self.name)


def _ran(tmp: Path, data: dict) -> list[str]:
    res = run_pipeline(parse_pipeline(data), base_dir=tmp, log=lambda m: None)
    assert [s.name for s in res.stages] == ALL
    return [s.name for s in res.stages if not s.skipped]


def test_stages_declare_folder_upstream_and_fingerprint(tmp_path):
    stages = build_stages(parse_pipeline(_config(tmp_path)), tmp_path / "run", tmp_path)
    by = {s.name: s for s in stages}
    assert [s.name for s in stages] == ALL
    assert {s.name: s.folder for s in stages} == {
        "generate": "stories",
        "neutral": "neutral",
        "validate": "validated",
        "fit": "vectors",
        "calibrate": "calibration",
        "score": "scores",
        "curate": "curated",
        "cards": "report",
    }
    # upstream stages by the name each stage reads them under
    assert {k: u.name for k, u in by["fit"].upstream.items()} == {
        "train": "validate",
        "neutral": "neutral",
    }
    assert {k: u.name for k, u in by["calibrate"].upstream.items()} == {
        "fit": "fit",
        "neutral": "neutral",
    }
    assert {k: u.name for k, u in by["score"].upstream.items()} == {
        "fit": "fit",
        "calibration": "calibrate",
    }
    assert {k: u.name for k, u in by["curate"].upstream.items()} == {"scores": "score"}
    assert {u.name for u in by["cards"].upstream.values()} == {
        "generate",
        "validate",
        "fit",
        "score",
        "curate",
    }
    assert len({s.fingerprint() for s in stages}) == len(stages)


def test_rerun_rebuilds_exactly_the_stages_downstream_of_a_change(tmp_path, stub_runs):
    data = _config(tmp_path)
    assert _ran(tmp_path, data) == ALL
    assert _ran(tmp_path, data) == []
    # generate's seed: generate and everything that reads it, cards included (not neutral)
    data["generate"]["seed"] = 1
    assert _ran(tmp_path, data) == [
        "generate",
        "validate",
        "fit",
        "calibrate",
        "score",
        "curate",
        "cards",
    ]
    # the neutral reference: fit (z-scores), the calibration and what follows
    data["neutral"]["seed"] = 1
    assert _ran(tmp_path, data) == ["neutral", "fit", "calibrate", "score", "curate", "cards"]
    # a scoring option the calibration depends on: calibrate, score and what follows
    data["score"]["options"] = {"smooth": 5}
    assert _ran(tmp_path, data) == ["calibrate", "score", "curate", "cards"]
    # the curate policy's content (same path): curate and cards only
    (tmp_path / "policy.yaml").write_text("rules: []\ndefault: keep\n")
    assert _ran(tmp_path, data) == ["curate", "cards"]
    # a corpus file edited in place: score, curate, cards (not the calibration)
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"text": "He was sad."}) + "\n")
    assert _ran(tmp_path, data) == ["score", "curate", "cards"]
    # rewriting the same bytes (a new mtime) changes nothing
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"text": "He was sad."}) + "\n")
    assert _ran(tmp_path, data) == []
    # the cards' own config: cards only
    data["cards"] = {"pretty_name": "renamed"}
    assert _ran(tmp_path, data) == ["cards"]


def test_wiring_is_declared_per_stage_class(tmp_path):
    """build_stages is one loop over pl.STAGES: the errors for a missing upstream come from
    the classes' declared inputs, before any stage runs."""
    data = _config(tmp_path)
    del data["neutral"]
    with pytest.raises(ConfigError, match="'score' needs calibrated flags: add a 'neutral'"):
        build_stages(parse_pipeline(data), tmp_path / "run", tmp_path)
    # fixed z-unit thresholds: no calibration, so no calibrate stage and no neutral needed
    data["score"]["options"] = {"z_thresholds": True}
    stages = build_stages(parse_pipeline(data), tmp_path / "run", tmp_path)
    by = {s.name: s for s in stages}
    assert "calibrate" not in by and list(by["score"].upstream) == ["fit"]
    data["fit"] = None
    with pytest.raises(ConfigError, match="'score' needs a 'fit' stage"):
        build_stages(parse_pipeline(data), tmp_path / "run", tmp_path)


def test_foreign_files_names_what_a_stage_did_not_declare(tmp_path):
    """Why: the score stage wrote calibration.json into the fit stage's folder."""
    stages = build_stages(parse_pipeline(_config(tmp_path)), tmp_path / "run", tmp_path)
    fit = {s.name: s for s in stages}["fit"]
    fit.path.mkdir(parents=True)
    for name in ("vectorset.json", "neutral/neutral.jsonl", MARKER):
        (fit.path / name).parent.mkdir(parents=True, exist_ok=True)
        (fit.path / name).write_text("{}")
    assert foreign_files(fit) == []
    (fit.path / "calibration.json").write_text("{}")
    assert foreign_files(fit) == [fit.path / "calibration.json"]


def _files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_seed_change_rebuilds_the_card_and_stages_write_only_their_folders(tmp_path):
    """Why: a changed seed removed ``stories/`` with its card; the card must come back, and
    a stage that reruns (cards) must not write into another stage's finished folder."""
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
        "cards": {"vector_card": False},
    }
    r1 = run_pipeline(parse_pipeline(data), log=lambda m: None)
    card = out / "report" / "dataset" / "README.md"
    assert r1.artifacts["dataset card"] == card and card.is_file()
    assert not (out / "validated" / "kept" / "README.md").exists()
    man = CardsManifest.read(out / "report")
    assert man is not None and man.dataset_dir == str(out / "validated" / "kept")

    data["generate"]["seed"] = 1
    r2 = run_pipeline(parse_pipeline(data), log=lambda m: None)
    assert [(s.name, s.skipped) for s in r2.stages] == [
        ("generate", False),
        ("validate", False),
        ("cards", False),
    ]
    assert all(p.exists() for p in r2.artifacts.values())
    gen_hash = json.loads((out / "validated" / "manifest.json").read_text())["input"]["hash"]
    assert gen_hash and card.is_file()

    # only the cards config changes: nothing outside report/ is touched
    before = {p: t for p, t in _files(out).items() if "report" not in p.parts}
    data["cards"]["pretty_name"] = "Renamed"
    r3 = run_pipeline(parse_pipeline(data), log=lambda m: None)
    assert [s.name for s in r3.stages if not s.skipped] == ["cards"]
    after = {p: t for p, t in _files(out).items() if "report" not in p.parts}
    assert after == before
    assert "Renamed" in card.read_text()
    assert all((out / d / MARKER).exists() for d in ("stories", "validated", "report"))
