"""Steer generation with an emotion vector, and measure whether steering does anything.

``steer`` adds ``strength × (mean residual norm at the layer) × unit vector`` to the output of
one decoder block at every position while the context is open, generated tokens included
(hooks always removed), so a strength of 0.5 moves the residual stream by half its typical
size whatever the model. ``measure_steering`` runs a grid of strengths and measures two things
per strength: the vector's own projection read back by the unsteered model on the steered
continuation, and the log-probability that the next word is one of the emotion's taxonomy
word forms. A vector that reads an emotion need not move the model toward it: the
monotonicity statistic (signed rho, p, n) says whether it does, and ``steering.json`` keeps
the answer for the vector card.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emocurate.artifacts import (  # noqa: F401 - the steering artifact, re-exported here
    STATISTIC,
    STEERING_FILE,
    STRENGTH_UNIT,
    EmotionSteering,
    Monotonicity,
    SteeringPoint,
    SteeringReport,
    library_versions,
    load_steering,
    verdict_sentence,
)
from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes
from emocurate.vectors.capture import encode
from emocurate.vectors.models import LoadedModel
from emocurate.vectors.vectorset import VectorSet

NEUTRAL_PROMPTS: tuple[str, ...] = (
    "Once upon a time, there was a girl named Lily. She felt",
    "Tom looked at the big box on the table. He was",
    "The dog and the cat sat in the yard. The cat was",
    "One day, Sam went to the park with his mom. Sam was",
    "The little bird sat on the branch. It was",
    "Mia opened the door and saw her friend. She was",
    "After lunch, Ben played with his blocks. He felt",
    "The sun went down and the park was quiet. Everyone was",
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


def emotion_words(emotion: str) -> list[str]:
    """Every taxonomy word form of an emotion (just the name when the taxonomy lacks it)."""
    from emocurate.errors import UnknownEmotionError
    from emocurate.taxonomy import load_taxonomy

    try:
        return list(load_taxonomy().get(emotion).forms) or [emotion]
    except UnknownEmotionError:  # a direction that is not a taxonomy emotion: its name is the word
        return [emotion]


DEFAULT_STRENGTHS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(-5, 6))
"""-0.5 … +0.5 in steps of 0.1, zero included (fractions of the mean residual norm)."""


def monotonicity(
    strengths: Sequence[float],
    values: Sequence[Sequence[float]],
    *,
    alpha: float = 0.05,
    n_permutations: int = 5000,
    seed: int = 0,
) -> Monotonicity:
    """Mean within-prompt Spearman rho of ``values[prompt][strength]`` on ``strengths``.

    Each prompt has its own baseline, so rho is computed per prompt and averaged; a prompt
    whose measure does not change contributes 0. The p-value is one-sided (rho > 0): the share
    of permutations of the strengths (within each prompt) whose mean rho is at least as large.
    """
    from scipy.stats import rankdata

    s = np.asarray(strengths, dtype=float)
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(s) or len(set(s.tolist())) != len(s) or len(s) < 3:
        raise InputError(
            f"monotonicity needs >= 3 distinct strengths and one value per strength per prompt "
            f"(got strengths {list(s)}, values of shape {v.shape})"
        )
    rs = rankdata(s) - (len(s) + 1) / 2
    rv = rankdata(v, axis=1)
    rv = rv - rv.mean(axis=1, keepdims=True)
    denom = np.sqrt((rv**2).sum(axis=1)) * np.sqrt((rs**2).sum())
    live = denom > 1e-12
    weights = np.where(live, 1.0 / np.where(live, denom, 1.0), 0.0)[:, None] * rv  # [P, K]
    rho = float((weights * rs).sum(axis=1).mean())
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.broadcast_to(rs, (n_permutations, *v.shape)).copy(), axis=2)
    null = (perms * weights).sum(axis=2).mean(axis=1)
    p = float((1 + np.count_nonzero(null >= rho - 1e-9)) / (n_permutations + 1))
    return Monotonicity(
        rho=rho,
        p=p,
        n=int(v.size),
        n_prompts=int(v.shape[0]),
        n_permutations=n_permutations,
        alpha=alpha,
        peak_strength=float(s[int(np.argmax(v.mean(axis=0)))]),
        verdict="pass" if rho > 0 and p < alpha else "fail",
    )


def _word_ids(tok: Any, prompt_ids: list[int], prompt: str, word: str) -> list[int]:
    """The tokens of `` word`` as the tokenizer splits it after ``prompt``."""
    full = encode(tok, [f"{prompt} {word}"])[0]
    if full[: len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
        return full[len(prompt_ids) :]
    return list(tok.encode(f" {word}", add_special_tokens=False))


def forms_logprob(lm: LoadedModel, prompt_ids: list[int], forms: Sequence[list[int]]) -> float:
    """``log Σ_form P(form | prompt)``: the log-probability that the next word is one of ``forms``.

    One right-padded batch (padding after the real tokens cannot change them under causal
    attention); a form's probability is the product over its tokens.
    """
    seqs = [prompt_ids + f for f in forms]
    width = max(len(x) for x in seqs)
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs], device=lm.device)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs], device=lm.device)
    with torch.inference_mode():
        logits = lm.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    n = len(prompt_ids)
    per_form = []
    for r, f in enumerate(forms):
        pos = torch.arange(n - 1, n - 1 + len(f), device=lm.device)
        per_form.append(logp[r, pos, torch.tensor(f, device=lm.device)].sum())
    return float(torch.logsumexp(torch.stack(per_form), dim=0))


def greedy_continuation(lm: LoadedModel, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """Exactly ``max_new_tokens`` greedy tokens after ``prompt_ids`` (end-of-text suppressed)."""
    tok = lm.tokenizer
    ids = torch.tensor([prompt_ids], device=lm.device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.inference_mode():
        out = lm.model.generate(  # type: ignore[operator]
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            pad_token_id=pad,
        )
    return [int(t) for t in out[0, len(prompt_ids) :].tolist()]


def readback_projection(
    lm: LoadedModel, vs: VectorSet, emotion: str, layer: int, prompt_ids: list[int], cont: list[int]
) -> float:
    """Mean projection of the continuation's activations at ``layer`` on the emotion's vector,
    read by the model as it is (call outside any steering context)."""
    from emocurate.vectors.capture import capture

    ids = torch.tensor([prompt_ids + cont], device=lm.device)
    with capture(lm, [layer]) as cap:
        acts = cap.run(input_ids=ids)[layer][0, len(prompt_ids) :]
    return float(vs.project(acts, layer)[:, vs.index(emotion)].mean())


def measure_steering(
    lm: LoadedModel,
    vs: VectorSet,
    emotions: Sequence[str],
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    *,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    layer: int | None = None,
    max_new_tokens: int = 24,
    alpha: float = 0.05,
    n_permutations: int = 5000,
) -> SteeringReport:
    """The dose-response of each emotion over ``strengths``, measured two ways (see
    :class:`SteeringReport`), with a monotonicity statistic and verdict per measure."""
    strengths = [float(s) for s in strengths]
    tok = lm.tokenizer
    prompt_ids = [encode(tok, [p])[0] for p in prompts]
    out: dict[str, EmotionSteering] = {}
    for emotion in emotions:
        vs.index(emotion)
        at = vs.layer_or_default(layer)
        words = emotion_words(emotion)
        forms = [
            [_word_ids(tok, ids, p, w) for w in words]
            for p, ids in zip(prompts, prompt_ids, strict=True)
        ]
        proj = np.zeros((len(prompts), len(strengths)))
        wlp = np.zeros_like(proj)
        for k, s in enumerate(strengths):
            with steer(lm, vs, emotion, s, layer=at):
                conts = [greedy_continuation(lm, ids, max_new_tokens) for ids in prompt_ids]
                for i, ids in enumerate(prompt_ids):
                    wlp[i, k] = forms_logprob(lm, ids, forms[i])
            for i, ids in enumerate(prompt_ids):
                proj[i, k] = readback_projection(lm, vs, emotion, at, ids, conts[i])
        scale = float(steering_delta(lm, vs, emotion, 1.0, at)[1].norm())
        m_proj = monotonicity(strengths, proj.tolist(), alpha=alpha, n_permutations=n_permutations)
        m_word = monotonicity(strengths, wlp.tolist(), alpha=alpha, n_permutations=n_permutations)
        sd = (lambda a: a.std(axis=0, ddof=1)) if len(prompts) > 1 else (lambda a: 0 * a[0])
        out[emotion] = EmotionSteering(
            emotion=emotion,
            layer=at,
            residual_norm=scale,
            projection_unit="z" if at in vs.ref_mean else "raw",
            words=words,
            points=[
                SteeringPoint(
                    strength=s,
                    projection=float(proj[:, k].mean()),
                    projection_sd=float(sd(proj)[k]),
                    word_logprob=float(wlp[:, k].mean()),
                    word_logprob_sd=float(sd(wlp)[k]),
                )
                for k, s in enumerate(strengths)
            ],
            projection_by_prompt=proj.tolist(),
            word_logprob_by_prompt=wlp.tolist(),
            projection=m_proj,
            word_logprob=m_word,
            # A vector steers toward its emotion only if the text moves along it AND the
            # emotion's own words become likelier: the read-back alone can rise for a vector
            # that is not about the emotion at all (it measures the vector against itself).
            verdict="pass" if m_proj.verdict == m_word.verdict == "pass" else "fail",
        )
    return SteeringReport(
        model_id=vs.meta.model_id,
        model_revision=vs.meta.model_revision,
        vectors_created=vs.meta.created,
        train_data_hash=vs.meta.train_data_hash,
        decoding=f"greedy, {max_new_tokens} new tokens per prompt",
        max_new_tokens=max_new_tokens,
        prompts=list(prompts),
        emotions=out,
    )


def save_steering(report: SteeringReport, vectors_dir: str | Path) -> Path:
    """Write ``steering.json``, keeping other emotions already measured on the same fit."""
    path = Path(vectors_dir) / STEERING_FILE
    try:
        old = load_steering(vectors_dir)
    except InputError:
        old = None  # unreadable: replaced by this measurement
    if old is not None and (
        old.vectors_created,
        old.train_data_hash,
        old.model_id,
    ) == (report.vectors_created, report.train_data_hash, report.model_id):
        report = report.model_copy(update={"emotions": {**old.emotions, **report.emotions}})
    atomic_write_bytes(path, (report.model_dump_json(indent=2) + "\n").encode())
    return path


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


def print_steering(report: SteeringReport, console: Any) -> None:
    """A rich table per emotion: both measures per strength, then rho, p, n and the verdict."""
    from rich.table import Table

    for e in report.emotions.values():
        table = Table(
            title=f"steering '{e.emotion}' at layer {e.layer} (strength × norm {e.residual_norm:.3g})"
        )
        table.add_column("strength", justify="right")
        table.add_column(f"read-back projection ({e.projection_unit})", justify="right")
        table.add_column("log P(word forms)", justify="right")
        for pt in e.points:
            table.add_row(
                f"{pt.strength:+.2f}",
                f"{pt.projection:+.3f} ± {pt.projection_sd:.3f}",
                f"{pt.word_logprob:.3f} ± {pt.word_logprob_sd:.3f}",
            )
        console.print(table)
        for label, m in (
            ("projection read-back", e.projection),
            ("word log-prob (reported beside it)", e.word_logprob),
        ):
            console.print(
                f"  {label}: rho {m.rho:+.2f}, one-sided p {m.p:.3g}, n {m.n} "
                f"({m.n_prompts} prompts), highest at {m.peak_strength:+.2f} -> {m.verdict}"
            )
        console.print(f"{e.verdict.upper()}: {verdict_sentence(e)}")
