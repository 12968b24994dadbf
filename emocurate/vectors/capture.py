"""Residual-stream capture with forward hooks that are always removed.

``capture(model, layers)`` is a context manager (in the style of steering-vectors): while it
is open, a forward pass records the output of each chosen decoder block, and the forward pass
is cut short after the deepest chosen block (no later blocks, no LM head). Hooks are removed
on exit even when the body raises.

``pooled_activations`` and ``token_activations`` batch texts by a token budget after sorting
by length, pass an attention mask and position ids that are correct for left or right
padding, and keep running sums so memory does not grow with the number of texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from emocurate.vectors.models import LoadedModel, find_layers


class _StopForward(Exception):
    """Raised inside the deepest hook to skip the rest of the network."""


@dataclass
class ActivationCapture:
    """Holds the activations recorded by the open :func:`capture` context."""

    model: nn.Module
    layers: tuple[int, ...]
    stop_early: bool
    outputs: dict[int, torch.Tensor]

    def run(self, **inputs: Any) -> dict[int, torch.Tensor]:
        """Run one forward pass and return ``{layer: [batch, seq, hidden]}``."""
        self.outputs.clear()
        try:
            with torch.inference_mode():
                self.model(**inputs, use_cache=False)
        except _StopForward:
            pass
        missing = [i for i in self.layers if i not in self.outputs]
        if missing:
            raise RuntimeError(f"layers {missing} produced no activations")
        return dict(self.outputs)


@contextmanager
def capture(
    model: nn.Module | LoadedModel, layers: Sequence[int], *, stop_early: bool = True
) -> Iterator[ActivationCapture]:
    """Hook the residual stream (decoder block outputs) at ``layers``.

    Args:
        model: a transformers causal LM or a :class:`LoadedModel`.
        layers: 0-based block indices; negative indices count from the end.
        stop_early: cut the forward pass after the deepest requested block.
    """
    module = model.model if isinstance(model, LoadedModel) else model
    _, blocks = find_layers(module)
    n = len(blocks)
    wanted = tuple(sorted({(i + n) if i < 0 else i for i in layers}))
    if not wanted or wanted[0] < 0 or wanted[-1] >= n:
        raise ValueError(f"layers {list(layers)} out of range for a {n}-layer model")
    deepest = wanted[-1]
    cap = ActivationCapture(model=module, layers=wanted, stop_early=stop_early, outputs={})
    handles = []

    def make_hook(idx: int) -> Callable[..., None]:
        def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
            hidden = out[0] if isinstance(out, tuple) else out
            cap.outputs[idx] = hidden.detach()
            if stop_early and idx == deepest:
                raise _StopForward

        return hook

    try:
        for idx in wanted:
            handles.append(blocks[idx].register_forward_hook(make_hook(idx)))
        yield cap
    finally:
        for h in handles:
            h.remove()


@dataclass
class Batch:
    """One padded batch: original text indices and model inputs."""

    indices: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: list[int]
    padding_side: str

    def model_inputs(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask and position ids that ignore padding (left or right).

        On CUDA the host tensors are pinned and copied asynchronously (the copy is queued on
        the current stream, before the kernels that read it).
        """
        dev = torch.device(device)
        if dev.type == "cuda":
            ids = self.input_ids.pin_memory().to(dev, non_blocking=True)
            mask = self.attention_mask.pin_memory().to(dev, non_blocking=True)
        else:
            ids, mask = self.input_ids.to(dev), self.attention_mask.to(dev)
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}

    def token_slice(self, row: int) -> slice:
        """Where the real (non-padding) tokens of ``row`` sit in the padded sequence."""
        length = self.lengths[row]
        width = self.input_ids.shape[1]
        return slice(width - length, width) if self.padding_side == "left" else slice(0, length)


def encode(tokenizer: Any, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids per text (with BOS when the tokenizer adds one), truncated to ``max_length``."""
    enc = tokenizer(
        list(texts),
        add_special_tokens=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    return [list(ids) for ids in enc["input_ids"]]


def plan_batches(
    lengths: Sequence[int], batch_tokens: int, max_batch: int = 256, batch_cost: int | None = None
) -> list[list[int]]:
    """Split sequences into length-sorted batches with the fewest padded tokens.

    Batches are contiguous runs of the length-sorted order, each within ``batch_tokens`` padded
    tokens (``rows x longest``; a sequence longer than the budget is a batch alone) and
    ``max_batch`` rows. Among all such splits this picks the one minimising padded tokens plus
    ``batch_cost`` (default ``batch_tokens / 16``) per batch, by dynamic programming over the
    sorted order: greedy filling (the former rule) wastes ~10% of a shard of short documents on
    padding where this wastes ~5%, and the forward pays for every padded token.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    n = len(order)
    if n == 0:
        return []
    srt = np.array([lengths[i] for i in order], dtype=np.int64)
    lam = batch_tokens / 16 if batch_cost is None else batch_cost
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    prev = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        width = int(srt[j - 1])
        rows = max(1, min(max_batch, batch_tokens // max(1, width), j))
        lo = j - rows
        # cost of ending a batch of rows i..j-1 here, for every allowed start i in [lo, j)
        cand = best[lo:j] + (j - np.arange(lo, j)) * width + lam
        k = int(np.argmin(cand))
        best[j], prev[j] = cand[k], lo + k
    cuts: list[tuple[int, int]] = []
    j = n
    while j > 0:
        cuts.append((int(prev[j]), j))
        j = int(prev[j])
    return [order[a:b] for a, b in reversed(cuts)]


def batch_cost(batch_tokens: int, device: torch.device | str) -> int:
    """What one more forward call costs, in padded tokens, for :func:`plan_batches`.

    On a CPU a call's fixed cost (Python and small kernels, ~10 ms) is worth ~16 tokens at the
    ~1,600 tokens/s of a small model on 2 cores, so splitting a batch to save padding nearly always
    pays: 1/64 of the budget (128 of 8,192) keeps a margin. On an accelerator the launches of
    an eager forward (~10-30 ms) are worth thousands of tokens at 10^5 tokens/s: 1/4 of the budget.
    """
    if torch.device(device).type == "cpu":
        return max(16, batch_tokens // 64)
    return batch_tokens // 4


def make_batches(
    ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_tokens: int = 8192,
    max_batch: int = 256,
    padding_side: str = "right",
    cost: int | None = None,
) -> Iterator[Batch]:
    """Length-sorted padded batches of about ``batch_tokens`` (see :func:`plan_batches`;
    ``cost`` = its ``batch_cost``, e.g. :func:`batch_cost` for the model's device)."""
    for idx in plan_batches([len(s) for s in ids], batch_tokens, max_batch, cost):
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            seq = torch.tensor(ids[i], dtype=torch.long)
            if padding_side == "left":
                input_ids[r, width - len(seq) :] = seq
                mask[r, width - len(seq) :] = 1
            else:
                input_ids[r, : len(seq)] = seq
                mask[r, : len(seq)] = 1
        yield Batch(idx, input_ids, mask, [len(ids[i]) for i in idx], padding_side)


def pool_start(
    n_tokens: int, skip: int, has_bos: bool, *, first: int = 0, clip: bool = False
) -> int:
    """First pooled position: token ``skip`` exactly (anchor recipe: 50), never before ``first``.

    ``first`` is the first token a caller allows (for a story, the first token of its generated
    part). The first position is never pooled, BOS or not: it is an attention sink whose
    activation is an outlier (SmolLM2, which adds no BOS, has a first-token norm of ~22,000
    against ~200 for the others at layer 15, nearly all of it in dimension 507). A
    result ``>= n_tokens`` means the text has no token in the window; callers leave it out (and
    count it) rather than pool something else. ``clip=True`` is the opt-in, named ``clip`` rule:
    a short text is pooled from ``min(skip, n_tokens // 2)`` instead (still never before
    ``first`` or the BOS).
    """
    start = min(skip, n_tokens // 2) if clip else skip
    del has_bos  # kept for callers; the first position is skipped either way (see above)
    return max(start, first, 1)


def has_bos(tokenizer: Any, ids: Sequence[Sequence[int]]) -> bool:
    """Whether every sequence starts with the tokenizer's BOS token."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bool(ids) and bos is not None and all(s[:1] == [bos] for s in ids if s)


def iter_hidden(
    lm: LoadedModel,
    ids: Sequence[Sequence[int]],
    layers: Sequence[int],
    *,
    batch_tokens: int = 8192,
    padding_side: str = "right",
) -> Iterator[tuple[Batch, dict[int, torch.Tensor]]]:
    """Yield each length-sorted batch with its ``{layer: [batch, seq, hidden]}`` activations.

    The building block of every streaming consumer (pooling, running sums, token scores):
    nothing outlives one batch unless the caller keeps it.
    """
    wanted = sorted({_norm(layer, lm.n_layers) for layer in layers})
    pad_id = lm.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = 0
    with capture(lm, wanted) as cap:
        for batch in make_batches(
            ids,
            pad_id=pad_id,
            batch_tokens=batch_tokens,
            padding_side=padding_side,
            cost=batch_cost(batch_tokens, lm.device),
        ):
            yield batch, cap.run(**batch.model_inputs(lm.device))


def pool_mask(batch: Batch, starts: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """``[batch, seq]`` float mask selecting tokens ``[start, end)`` of each row's real tokens."""
    width = batch.input_ids.shape[1]
    pos = torch.arange(width, device=device).unsqueeze(0)
    lengths = torch.tensor(batch.lengths, device=device).unsqueeze(1)
    offset = (width - lengths) if batch.padding_side == "left" else torch.zeros_like(lengths)
    first = offset + torch.tensor(list(starts), device=device).unsqueeze(1)
    last = offset + lengths
    return ((pos >= first) & (pos < last)).float()


def iter_pooled(
    lm: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    skip: int = 50,
    batch_tokens: int = 8192,
    max_length: int | None = None,
    padding_side: str = "right",
) -> Iterator[tuple[list[int], dict[int, torch.Tensor]]]:
    """Yield ``(text indices, {layer: [batch, hidden] float32})`` one batch at a time.

    Pooling is the mean over tokens ``[pool_start, end)`` (see :func:`pool_start`). Every text
    gets a row, so a text too short for the window is pooled by the named ``clip`` rule (from
    half its length; a text of only BOS is pooled at its last token). Fitting does not use this
    helper: it leaves short records out and counts them. Callers that only need running sums
    never hold more than one batch.
    """
    tok = lm.tokenizer
    ids = encode(tok, texts, max_length or context_length(lm))
    bos = has_bos(tok, ids)
    for batch, acts in iter_hidden(
        lm, ids, layers, batch_tokens=batch_tokens, padding_side=padding_side
    ):
        any_act = next(iter(acts.values()))
        starts = [min(pool_start(n, skip, bos, clip=True), max(n - 1, 0)) for n in batch.lengths]
        mask = pool_mask(batch, starts, any_act.device)
        denom = mask.sum(1, keepdim=True).clamp_min(1.0)
        out = {}
        for layer in layers:
            h = acts[_norm(layer, lm.n_layers)].float()
            out[layer] = torch.einsum("bs,bsd->bd", mask, h) / denom
        yield batch.indices, out


def pooled_activations(
    lm: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    skip: int = 50,
    batch_tokens: int = 8192,
    max_length: int | None = None,
    padding_side: str = "right",
    progress: Callable[[int], None] | None = None,
) -> dict[int, torch.Tensor]:
    """Mean activation per text over tokens ``[start, end)``; returns ``{layer: [n, hidden]}``.

    This keeps one row per text (use :func:`iter_pooled` with running sums for large sets).
    """
    out = {layer: torch.zeros(len(texts), lm.hidden_size, dtype=torch.float32) for layer in layers}
    for indices, pooled in iter_pooled(
        lm,
        texts,
        layers,
        skip=skip,
        batch_tokens=batch_tokens,
        max_length=max_length,
        padding_side=padding_side,
    ):
        idx = torch.tensor(indices)
        for layer in layers:
            out[layer][idx] = pooled[layer].cpu()
        if progress:
            progress(len(indices))
    return out


def token_activations(
    lm: LoadedModel,
    texts: Sequence[str],
    layer: int,
    *,
    batch_tokens: int = 8192,
    max_length: int | None = None,
    padding_side: str = "right",
) -> Iterator[tuple[int, list[int], torch.Tensor]]:
    """Yield ``(text index, token ids, [n_tokens, hidden] activations)`` in length order."""
    ids = encode(lm.tokenizer, texts, max_length or context_length(lm))
    for batch, acts in iter_hidden(
        lm, ids, [layer], batch_tokens=batch_tokens, padding_side=padding_side
    ):
        h = acts[_norm(layer, lm.n_layers)]
        for r, i in enumerate(batch.indices):
            yield i, ids[i], h[r, batch.token_slice(r)].float().cpu()


def _norm(layer: int, n: int) -> int:
    return layer + n if layer < 0 else layer


def context_length(lm: LoadedModel) -> int:
    """The model's context window (``max_position_embeddings`` or similar; 2048 if unknown)."""
    return config_context_length(lm.model.config)  # type: ignore[union-attr]


def config_context_length(config: Any) -> int:
    """The context window a transformers config declares (2048 if it declares none).

    Multimodal configs keep it in their ``text_config``.
    """
    text_cfg = getattr(config, "text_config", None) or config
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        val = getattr(text_cfg, key, None)
        if isinstance(val, int) and val > 0:
            return val
    return 2048
