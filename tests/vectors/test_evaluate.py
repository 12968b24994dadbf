"""Evaluation: classification metrics, geometry vs valence/arousal, logit lens."""

from __future__ import annotations

import json

import pytest
import torch
from synth import make_stories

from emocurate.configs import FitConfig
from emocurate.io import write_records
from emocurate.vectors import evaluate as ev
from emocurate.vectors.fit import fit_vectors
from emocurate.vectors.models import unembedding
from emocurate.vectors.vectorset import VectorSet, VectorSetMeta


def test_classification_metrics_known_answers():
    names = ["a", "b", "c", "d"]
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    scores = torch.eye(4)[labels] * 2.0  # perfect
    m = ev.classification_metrics(scores, labels, names)
    assert m.accuracy == 1.0 and m.top3 == 1.0 and m.auroc_mean == 1.0
    assert m.confusion[0][0] == 2 and m.chance == 0.25
    # always predict "b" (second best is the truth): accuracy = share of b, top3 = 1, confusion column
    scores = torch.eye(4)[labels] + torch.tensor([0.0, 5.0, 0.0, 0.0])
    m = ev.classification_metrics(scores, labels, names)
    assert m.accuracy == pytest.approx(2 / 6)
    assert m.top3 == 1.0
    assert [row[1] for row in m.confusion] == [2, 2, 1, 1]
    # reversed scores give AUROC 0
    m = ev.classification_metrics(-torch.eye(4)[labels], labels, names)
    assert m.auroc["a"] == 0.0


def test_geometry_recovers_valence_and_arousal(monkeypatch):
    names = ["joy", "calm", "rage", "gloom", "thrill"]
    val = torch.tensor([0.9, 0.6, -0.8, -0.7, 0.5], dtype=torch.float64)
    aro = torch.tensor([0.5, -0.8, 0.9, -0.6, 0.95], dtype=torch.float64)
    monkeypatch.setattr(ev, "_taxonomy_axes", lambda n: (val, aro, torch.ones(5, dtype=torch.bool)))
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(16, 2, generator=g))
    vectors = (
        -3.0 * val[:, None] * basis[:, 0] + 1.0 * aro[:, None] * basis[:, 1]
    ).float()  # valence is PC1, sign flipped
    out = ev.geometry(vectors, names)
    assert out["pc1_valence_r"] > 0.99 and out["pc2_arousal_r"] > 0.95
    assert out["coords"]["joy"][0] > 0 > out["coords"]["rage"][0]  # sign fixed by the taxonomy
    assert sum(out["variance_explained"][:2]) == pytest.approx(1.0, abs=1e-6)


def test_logit_lens_reads_the_unembedding(lm260k):
    w_u = unembedding(lm260k.model).detach()
    norm_w = lm260k.model.model.norm.weight.detach()
    target = 393  # " happy"
    v = (w_u[target] / norm_w).unsqueeze(0)  # after the norm gain this is exactly the token's row
    out = ev.logit_lens(lm260k, v, ["happy"], k=3)
    assert out["happy"].top[0] == lm260k.tokenizer.decode([target])


def test_evaluate_on_records(tmp_path, lm260k):
    write_records(tmp_path / "rec", make_stories(8, seed=1))
    vs = fit_vectors(tmp_path / "rec", FitConfig(layers="4"), tmp_path / "out", lm=lm260k)
    fresh = make_stories(5, seed=7)
    report = ev.evaluate(vs, lm260k, fresh)
    assert report.n == 20 and report.accuracy >= 0.75 and report.skipped == 0
    assert set(report.auroc) == set(vs.names)
    assert report.logit_lens is not None and "happy" in report.logit_lens
    bad = make_stories(2, emotions=["happy"], seed=3)
    bad[0] = bad[0].model_copy(update={"emotion": "bored"})
    assert ev.evaluate(vs, lm260k, bad).skipped == 1


def test_full_report_without_scores():
    meta = VectorSetMeta(
        names=["a", "b", "c"],
        layers=[0],
        default_layer=0,
        model_id="m",
        hidden_size=4,
        n_model_layers=1,
    )
    vs = VectorSet(vectors={0: torch.randn(3, 4)}, meta=meta)
    rep = ev.full_report(vs, None, None, None)
    assert rep.accuracy is None and set(rep.geometry.coords) == {"a", "b", "c"}
    assert "accuracy" not in json.loads(rep.as_json())  # a part not measured is absent
