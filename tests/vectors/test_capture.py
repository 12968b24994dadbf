"""Hook capture: equals output_hidden_states, padding invariance, early stop, hook removal."""

from __future__ import annotations

import random

import pytest
import torch
from tiny import tiny_lm, tiny_model

from emocurate.vectors.capture import (
    batch_cost,
    capture,
    iter_pooled,
    make_batches,
    plan_batches,
    pooled_activations,
)

FAMILIES = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "phi3",
    "gpt2",
    "gpt_neox",
]
TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Tim saw a big dog.",
    "One day, the sun was very hot and the little bird wanted to play with her friend in the park.",
    "She was happy.",
    "They said that the day was big and the mom was very happy with the time they had there.",
]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_hook_capture_equals_output_hidden_states(model_type):
    model = tiny_model(model_type)
    ids = torch.randint(3, 512, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(input_ids=ids, output_hidden_states=True).hidden_states
    layers = [0, 1, 2]  # the last entry of hidden_states is after the final norm in most families
    with capture(model, layers, stop_early=True) as cap:
        got = cap.run(input_ids=ids)
    for i in layers:
        assert torch.allclose(got[i], ref[i + 1], atol=1e-5), (model_type, i)


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "qwen2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_invariance(model_type, side, tokenizer260k):
    lm = tiny_lm(model_type, tokenizer260k)
    layers = [1, 3]
    batched = pooled_activations(lm, TEXTS, layers, skip=3, padding_side=side, batch_tokens=4096)
    for i, text in enumerate(TEXTS):
        single = pooled_activations(lm, [text], layers, skip=3, padding_side=side)
        for layer in layers:
            assert torch.allclose(batched[layer][i], single[layer][0], atol=1e-5), (
                model_type,
                side,
                i,
            )


def test_padding_invariance_embedded_model(lm260k):
    layers = [2, 4]
    left = pooled_activations(lm260k, TEXTS, layers, skip=50, padding_side="left")
    right = pooled_activations(
        lm260k, TEXTS, layers, skip=50, padding_side="right", batch_tokens=40
    )
    for i, text in enumerate(TEXTS):
        single = pooled_activations(lm260k, [text], layers, skip=50)
        for layer in layers:
            assert torch.allclose(left[layer][i], single[layer][0], atol=1e-4)
            assert torch.allclose(right[layer][i], single[layer][0], atol=1e-4)


def test_forward_stops_after_deepest_layer():
    model = tiny_model("llama")
    ran: list[str] = []
    blocks = model.model.layers
    hooks = [
        blocks[i].register_forward_pre_hook(lambda *_a, i=i: ran.append(f"layer{i}"))
        for i in range(4)
    ]
    hooks.append(model.lm_head.register_forward_pre_hook(lambda *_a: ran.append("lm_head")))
    hooks.append(model.model.norm.register_forward_pre_hook(lambda *_a: ran.append("norm")))
    ids = torch.tensor([[1, 5, 6, 7]])
    with capture(model, [0, 1]) as cap:
        out = cap.run(input_ids=ids)
    assert sorted(out) == [0, 1]
    assert ran == ["layer0", "layer1"]
    ran.clear()
    with capture(model, [1], stop_early=False) as cap:
        cap.run(input_ids=ids)
    assert ran == ["layer0", "layer1", "layer2", "layer3", "norm", "lm_head"]
    for h in hooks:
        h.remove()


def test_hooks_removed_even_on_error():
    model = tiny_model("gpt2")
    blocks = model.transformer.h
    with pytest.raises(RuntimeError, match="boom"), capture(model, [0, 2]):
        assert all(len(b._forward_hooks) == 1 for b in (blocks[0], blocks[2]))
        raise RuntimeError("boom")
    assert all(len(b._forward_hooks) == 0 for b in blocks)


def test_capture_rejects_out_of_range_layers():
    with pytest.raises(ValueError, match="out of range"), capture(tiny_model("llama"), [9]):
        pass


def test_batches_sorted_and_within_budget():
    ids = [[1] * n for n in (5, 50, 3, 20, 8, 40)]
    batches = list(make_batches(ids, pad_id=0, batch_tokens=64))
    assert sorted(i for b in batches for i in b.indices) == list(range(6))
    for b in batches:
        assert b.input_ids.numel() <= 64 or len(b.indices) == 1
    widths = [b.input_ids.shape[1] for b in batches]
    assert widths == sorted(widths)


def _greedy_padded(lengths: list[int], budget: int) -> int:
    """Padded tokens of the former rule: fill each sorted batch until the next would overflow."""
    s, total, i = sorted(lengths), 0, 0
    while i < len(s):
        j = i + 1
        while j < len(s) and j - i < 256 and s[j] * (j - i + 1) <= budget:
            j += 1
        total += (j - i) * s[j - 1]
        i = j
    return total


def _padded(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_plan_batches_pads_less_than_greedy_filling():
    rng = random.Random(0)
    # a shard of short documents: 256 lengths of 0.5x-1.5x 230 tokens, the bench's shape
    lengths = [int(230 * (0.5 + rng.random())) for _ in range(256)]
    plan = plan_batches(lengths, 8192)
    assert sorted(i for b in plan for i in b) == list(range(256))
    assert all(len(b) * max(lengths[i] for i in b) <= 8192 for b in plan)
    real = sum(lengths)
    greedy, ours = _greedy_padded(lengths, 8192), _padded(plan, lengths)
    assert ours < greedy and ours / real <= 1.06 < greedy / real
    assert len(plan) <= real // 8192 + 4  # not bought with many small batches


def test_cpu_batch_cost_buys_less_padding_with_more_calls():
    rng = random.Random(0)
    lengths = [int(230 * (0.5 + rng.random())) for _ in range(256)]
    cpu = plan_batches(lengths, 8192, batch_cost=batch_cost(8192, "cpu"))
    gpu = plan_batches(lengths, 8192, batch_cost=batch_cost(8192, "cuda"))
    assert _padded(cpu, lengths) < _padded(gpu, lengths) and len(cpu) > len(gpu)
    assert _padded(cpu, lengths) / sum(lengths) <= 1.03


def test_plan_batches_is_optimal_on_small_inputs():
    rng = random.Random(1)
    for _ in range(30):
        lengths = [rng.randint(1, 40) for _ in range(rng.randint(1, 8))]
        budget, lam = 64, 4
        srt = sorted(lengths)
        best = float("inf")
        n = len(srt)
        for mask in range(1 << (n - 1)):  # every contiguous split of the sorted order
            cuts = [0] + [k + 1 for k in range(n - 1) if mask >> k & 1] + [n]
            groups = [srt[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
            if any(len(g) * g[-1] > budget and len(g) > 1 for g in groups):
                continue
            best = min(best, sum(len(g) * g[-1] + lam for g in groups))
        plan = plan_batches(lengths, budget, batch_cost=lam)
        assert _padded(plan, lengths) + lam * len(plan) == best


def test_iter_pooled_matches_pooled(lm260k):
    full = pooled_activations(lm260k, TEXTS, [1], skip=2)
    seen = 0
    for idx, pooled in iter_pooled(lm260k, TEXTS, [1], skip=2, batch_tokens=30):
        for r, i in enumerate(idx):
            assert torch.allclose(pooled[1][r], full[1][i], atol=1e-5)
            seen += 1
    assert seen == len(TEXTS)
