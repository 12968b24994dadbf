"""Steering on the embedded model: a genuine vector moves its word's probability both ways."""

from __future__ import annotations

import pytest
import torch
from synth import make_stories

from emocurate.io import write_records
from emocurate.vectors.fit import FitConfig, fit_vectors
from emocurate.vectors.steer import dose_response, generate, residual_norm, steer


@pytest.fixture(scope="module")
def happy_set(tmp_path_factory, lm260k):
    d = tmp_path_factory.mktemp("steer")
    write_records(d / "rec", make_stories(12))
    return fit_vectors(d / "rec", FitConfig(layers="3,4", skip=10), d / "out", lm=lm260k)


def test_dose_response_monotonic(happy_set, lm260k):
    up = dose_response(lm260k, happy_set, "happy", [0.0, 0.25, 0.5, 1.0], words=["happy"], layer=4)
    down = dose_response(
        lm260k, happy_set, "happy", [0.0, -0.25, -0.5, -1.0], words=["happy"], layer=4
    )
    ups = [r["logprob"] for r in up]
    downs = [r["logprob"] for r in down]
    assert all(b > a for a, b in zip(ups, ups[1:], strict=False)), ups
    assert all(b < a for a, b in zip(downs, downs[1:], strict=False)), downs
    assert ups[-1] - ups[0] > 1.0  # a real effect, not noise


def test_steer_hook_is_removed_and_scaled(happy_set, lm260k):
    ids = torch.tensor([[1, 403, 407, 378]])
    with torch.inference_mode():
        base = lm260k.model(input_ids=ids).logits
    with steer(lm260k, happy_set, "happy", 0.5, layer=4) as delta, torch.inference_mode():
        steered = lm260k.model(input_ids=ids).logits
    assert not torch.allclose(base, steered)
    assert delta.norm().item() == pytest.approx(0.5 * happy_set.meta.residual_norm["4"], rel=1e-4)
    with torch.inference_mode():
        assert torch.equal(lm260k.model(input_ids=ids).logits, base)
    assert all(len(b._forward_hooks) == 0 for b in lm260k.layers)
    assert residual_norm(lm260k, 4) > 0


def test_generate_changes_with_strength(happy_set, lm260k):
    prompt = "Once upon a time, there was a girl named Lily. She felt"
    plain = generate(lm260k, happy_set, "happy", 0.0, prompt, max_new_tokens=15)
    pushed = generate(lm260k, happy_set, "happy", 1.0, prompt, max_new_tokens=15, layer=4)
    assert plain.startswith(prompt) and pushed != plain
    assert "happy" in pushed
