"""Fitting methods are named aggregators in a registry that ``fit_vectors`` looks up."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from synth import make_stories

from emocurate.configs import FitConfig
from emocurate.io import write_records
from emocurate.vectors import fit
from emocurate.vectors.evaluate import read_evaluation
from emocurate.vectors.fit import AGGREGATORS, SUMS_ONLY, Pooled, fit_vectors, register_aggregator
from emocurate.vectors.vectorset import VectorSet


def test_registry_holds_exactly_the_accepted_methods():
    assert list(AGGREGATORS) == ["mean_diff", "pca", "logistic"]
    assert sorted(SUMS_ONLY) == [
        "mean_diff"
    ]  # the only method whose memory does not grow with records
    for name in AGGREGATORS:
        assert FitConfig(method=name).method == name
    with pytest.raises(ValidationError) as err:
        FitConfig(method="magic")
    problem = err.value.errors()[0]
    assert problem["type"] == "literal_error"
    assert problem["msg"] == "Input should be 'mean_diff', 'pca' or 'logistic'"


@pytest.fixture
def private_registry(monkeypatch):
    """Registrations made in a test leave the module's registry as it was."""
    monkeypatch.setattr(fit, "AGGREGATORS", dict(fit.AGGREGATORS))
    monkeypatch.setattr(fit, "SUMS_ONLY", set(fit.SUMS_ONLY))


@pytest.mark.parametrize("sums_only", [False, True])
def test_a_registered_aggregator_is_what_fit_uses(tmp_path, lm260k, private_registry, sums_only):
    calls: list[Pooled] = []

    def planted(pooled: Pooled) -> torch.Tensor:
        """Label e reads dimension e, scaled by e + 1: nothing the data could produce."""
        calls.append(pooled)
        d = pooled.sums.shape[1]
        return torch.eye(pooled.n_labels, d) * torch.arange(1, pooled.n_labels + 1).unsqueeze(1)

    register_aggregator("planted", sums_only=sums_only)(planted)
    assert fit.AGGREGATORS["planted"] is planted
    write_records(tmp_path / "rec", make_stories(10))
    cfg = FitConfig(method="planted", layers="3", skip=10, eval_seeds=2)
    vs = fit_vectors(tmp_path / "rec", cfg, tmp_path / "out", lm=lm260k)

    # no neutral text and no standardisation: the recipe leaves the aggregator's rows as they are
    n_e, d = len(vs.meta.names), lm260k.hidden_size
    want = torch.eye(n_e, d) * torch.arange(1, n_e + 1).unsqueeze(1)
    assert torch.equal(vs.vectors[3], want)
    assert torch.equal(VectorSet.load(tmp_path / "out").vectors[3], want)
    assert vs.meta.method == "planted" and read_evaluation(tmp_path / "out").method == "planted"
    # once per split seed on its training rows, then once on every record for the saved set
    assert len(calls) == cfg.eval_seeds + 1
    assert [float(p.counts.sum()) for p in calls][-1] == 40
    assert all(float(p.counts.sum()) < 40 for p in calls[:-1])
    if sums_only:  # no pooled rows are kept for a sums-only method
        assert all(p.rows is None and p.labels is None for p in calls)
    else:
        rows = [p.require_rows()[0].shape for p in calls]
        assert rows[-1] == (40, d) and all(r[0] < 40 for r in rows[:-1])


def test_an_unregistered_name_is_refused_in_the_same_words(tmp_path, private_registry):
    from emocurate.errors import ConfigError

    cfg = FitConfig().model_copy(update={"method": "gone"})  # validation bypassed
    with pytest.raises(ConfigError, match=r"^--method: Input should be 'mean_diff', 'pca' or"):
        fit_vectors(tmp_path / "rec", cfg, tmp_path / "out")
