"""A massive-activation dimension must not decide what the vectors read.

Real models have a few residual dimensions with a spread hundreds of times the median
(SmolLM2-135M: dimension 507 at layers 11-26, ~250x). With the raw mean difference that one
dimension's sampling noise dominates every vector and the argmax of the projections is close
to chance; ``--standardize dims`` (differences in per-dimension standardised coordinates) reads
the emotions as if the dimension were not there. It is opt-in: on a model with planted
directions its saved direction misdirects span recovery (docs/vectors.md).
"""

from __future__ import annotations

import pytest
import torch
from synth import make_stories

from emocurate.configs import FitConfig
from emocurate.io import write_records
from emocurate.vectors.fit import fit_vectors

LAYER = 4


@pytest.fixture()
def massive(lm260k):
    """stories260K with one dimension of the layer-4 output given a random per-text offset of
    250x the median dimension's spread (label-independent: pure nuisance)."""
    gen = torch.Generator().manual_seed(0)
    scale: dict[str, float] = {}

    def hook(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        if "sd" not in scale:
            scale["sd"] = float(h.float().reshape(-1, h.shape[-1]).std(0).median())
        offset = torch.randn(h.shape[0], 1, generator=gen) * 250 * scale["sd"]
        h = h.clone()
        h[..., 7] += offset.to(h.dtype)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = lm260k.layers[LAYER].register_forward_hook(hook)
    yield lm260k
    handle.remove()


def _fit(tmp_path, lm, name: str, **cfg):
    stories = make_stories(12, emotions=["happy", "sad", "angry", "scared"])
    write_records(tmp_path / "rec", stories)
    config = FitConfig(layers=str(LAYER), skip=5, eval_seeds=3, **cfg)
    return fit_vectors(tmp_path / "rec", config, tmp_path / name, lm=lm).meta.evaluation


def test_standardised_recipe_reads_past_a_massive_dimension(tmp_path, massive, lm260k):
    """``--standardize dims`` reads past it; the raw mean difference (the default, chosen for
    known-answer recovery: docs/vectors.md) does not without help."""
    dims = _fit(tmp_path, massive, "dims", standardize="dims")
    assert dims.accuracy >= 0.8, dims
    raw = _fit(tmp_path, massive, "raw")
    assert raw.accuracy <= 0.55, raw  # 4 emotions: chance 0.25


def test_recipe_direction_maps_back_to_raw_space():
    from emocurate.vectors.fit import recipe_direction

    torch.manual_seed(0)
    v = torch.randn(3, 6)
    scale = torch.tensor([1.0, 2.0, 4.0, 1.0, 0.5, 100.0])
    w = recipe_direction(v, scale, None)
    x = torch.randn(5, 6)
    # reading raw activations with the saved direction = reading standardised ones with v/scale
    assert torch.allclose(x @ w.T, (x / scale) @ (v / scale).T, atol=1e-5)
    assert torch.equal(recipe_direction(v, None, None), v)
    pcs = torch.eye(6)[:, :1]
    assert torch.allclose(recipe_direction(v, None, pcs)[:, 0], torch.zeros(3))
    # with scaling, the PCs (of the standardised reference) are removed in standardised space
    u, _ = torch.linalg.qr(torch.randn(6, 2))
    w = recipe_direction(v, scale, u)
    assert torch.allclose((w * scale) @ u, torch.zeros(3, 2), atol=1e-5)
