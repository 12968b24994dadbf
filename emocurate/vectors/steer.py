"""Steer generation with an emotion vector, and measure the dose-response.

``steer`` adds ``strength × (mean residual norm at the layer) × unit vector`` to the output of
one decoder block at every position while the context is open (hooks always removed), so a
strength of 1 moves the residual stream by about its own typical size whatever the model.
``dose_response`` reports the mean log-probability of an emotion's words after neutral prompts
as a function of strength: the check that a vector causally does what its name says.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from emocurate.errors import InputError
from emocurate.vectors.capture import encode
from emocurate.vectors.models import LoadedModel
from emocurate.vectors.vectorset import VectorSet

NEUTRAL_PROMPTS: tuple[str, ...] = (
    "Once upon a time, there was a girl named Lily. She felt",
    "Tom looked at the big box on the table. He was",
    "The dog and the cat sat in the yard. The cat was",
    "One day, Sam went to the park with his mom. Sam was",
)
"""Plain story openings that end where a feeling word could come next."""


@contextmanager
def add_to_residual(lm: LoadedModel, layer: int, delta: torch.Tensor) -> Iterator[None]:
    """Add ``delta [hidden]`` to the output of block ``layer`` at every position."""
    block: nn.Module = lm.layers[layer]

    def hook(_mod: nn.Module, _inp: Any, out: Any) -> Any:
        if isinstance(out, tuple):
            return (out[0] + delta.to(out[0].dtype), *out[1:])
        return out + delta.to(out.dtype)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def residual_norm(lm: LoadedModel, layer: int, texts: Sequence[str] = NEUTRAL_PROMPTS) -> float:
    """Mean token norm ‖h‖ at ``layer`` on ``texts`` (BOS excluded): the steering scale."""
    from emocurate.vectors.capture import token_activations

    norms: list[torch.Tensor] = []
    for _, ids, acts in token_activations(lm, list(texts), layer):
        start = 1 if ids[:1] == [lm.tokenizer.bos_token_id] else 0
        norms.append(acts[start:].norm(dim=-1))
    return float(torch.cat(norms).mean())


def steering_delta(
    lm: LoadedModel, vs: VectorSet, emotion: str, strength: float, layer: int | None = None
) -> tuple[int, torch.Tensor]:
    """``(layer, strength × residual norm × unit vector)`` for one emotion."""
    layer = vs.layer_or_default(layer)
    unit = vs.unit(layer)[vs.index(emotion)]
    norm = vs.meta.residual_norm.get(str(layer))
    if norm is None:
        norm = residual_norm(lm, layer)
    return layer, (strength * norm * unit).to(lm.device)


@contextmanager
def steer(
    lm: LoadedModel, vs: VectorSet, emotion: str, strength: float, *, layer: int | None = None
) -> Iterator[torch.Tensor]:
    """Steer every forward pass (and so generation) toward ``emotion`` while open; yields the delta."""
    if lm.n_layers != vs.meta.n_model_layers or lm.hidden_size != vs.meta.hidden_size:
        raise InputError(
            f"vector set was fitted on {vs.meta.model_id} ({vs.meta.n_model_layers} layers, "
            f"hidden {vs.meta.hidden_size}); this model has {lm.n_layers} layers, hidden {lm.hidden_size}"
        )
    layer, delta = steering_delta(lm, vs, emotion, strength, layer)
    with add_to_residual(lm, layer, delta):
        yield delta


def word_logprob(lm: LoadedModel, prompts: Sequence[str], words: Sequence[str]) -> float:
    """Mean over prompts and words of ``log P(" word" | prompt)`` (sum over the word's tokens)."""
    tok = lm.tokenizer
    total = 0.0
    count = 0
    for prompt in prompts:
        p_ids = encode(tok, [prompt])[0]
        for word in words:
            full = encode(tok, [f"{prompt} {word}"])[0]
            if full[: len(p_ids)] != p_ids or len(full) <= len(p_ids):
                full = p_ids + list(tok.encode(f" {word}", add_special_tokens=False))
            ids = torch.tensor([full], device=lm.device)
            with torch.inference_mode():
                logits = lm.model(input_ids=ids, use_cache=False).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            targets = ids[0, 1:]
            lp = logp.gather(1, targets.unsqueeze(1)).squeeze(1)[len(p_ids) - 1 :]
            total += float(lp.sum())
            count += 1
    return total / max(count, 1)


def emotion_words(emotion: str) -> list[str]:
    """The taxonomy's word forms of an emotion (just the name when the taxonomy lacks it)."""
    try:
        from emocurate.taxonomy import load_taxonomy

        return list(load_taxonomy().get(emotion).forms)[:4] or [emotion]
    except Exception:  # no taxonomy or unknown name: the name itself is the word
        return [emotion]


def dose_response(
    lm: LoadedModel,
    vs: VectorSet,
    emotion: str,
    strengths: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    *,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    words: Sequence[str] | None = None,
    layer: int | None = None,
) -> list[dict[str, float]]:
    """Mean log-probability of the emotion's words after neutral prompts, per steering strength."""
    words = list(words) if words else emotion_words(emotion)
    out = []
    for s in strengths:
        with steer(lm, vs, emotion, s, layer=layer):
            out.append({"strength": float(s), "logprob": word_logprob(lm, prompts, words)})
    return out


def generate(
    lm: LoadedModel,
    vs: VectorSet,
    emotion: str,
    strength: float,
    prompt: str,
    *,
    layer: int | None = None,
    max_new_tokens: int = 60,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """Generate a continuation of ``prompt`` while steering (greedy when temperature is 0)."""
    tok = lm.tokenizer
    enc = tok(prompt, return_tensors="pt")
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature)
    else:
        kwargs.update(do_sample=False)
    with steer(lm, vs, emotion, strength, layer=layer), torch.inference_mode():
        out = lm.model.generate(  # type: ignore[operator]
            input_ids=enc["input_ids"].to(lm.device),
            attention_mask=enc["attention_mask"].to(lm.device),
            **kwargs,
        )
    return str(tok.decode(out[0], skip_special_tokens=True))
