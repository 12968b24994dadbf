"""Pooling activations over labelled texts: token windows, speaker turns and streaming moments.

Shared by fitting (:mod:`emocurate.vectors.fit`) and evaluation (:mod:`emocurate.vectors.evaluate`):
both must pool a record the same way (the set's token skip, its ``short`` rule, a speaker's
turns), so the pooling lives in one module that neither of them owns (no import cycle).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from emocurate.records import Dialogue, Story, render_turns
from emocurate.vectors.capture import (
    Batch,
    has_bos,
    iter_hidden,
    pool_mask,
    pool_start,
)
from emocurate.vectors.models import LoadedModel


@dataclass
class View:
    """One labelled pooling of the texts: which tokens to pool and the label of each text.

    Story views pool ``[starts[i], n)``; speaker views pool their ``ranges``. ``texts`` holds
    the pooled part as text (what the lexical baseline and the label-leak check read).
    """

    kind: str  # emotion | speaker_human | speaker_assistant | neutral
    names: list[str]
    labels: list[int]  # index into names per text
    starts: list[int] | None = None
    ranges: list[list[tuple[int, int]]] | None = None
    texts: list[str] = field(default_factory=list)


@dataclass
class Windows:
    """Per text: the first pooled token (``>= len(ids)``: no token in the window) and its text."""

    starts: list[int]
    texts: list[str]

    def usable(self, ids: Sequence[Sequence[int]]) -> list[bool]:
        """Whether each text has at least one token in its window."""
        return [s < len(i) for s, i in zip(self.starts, ids, strict=True)]


def encode_with_offsets(
    tokenizer: Any, texts: Sequence[str], max_length: int | None
) -> tuple[list[list[int]], list[list[tuple[int, int]]] | None]:
    """Token ids (as :func:`capture.encode`) and character offsets (``None`` without a fast tokenizer)."""
    kwargs: dict[str, Any] = {
        "add_special_tokens": True,
        "truncation": max_length is not None,
        "max_length": max_length,
    }
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(list(texts), return_offsets_mapping=True, **kwargs)
        offsets = [[(int(a), int(b)) for a, b in o] for o in enc["offset_mapping"]]
        return [list(i) for i in enc["input_ids"]], offsets
    enc = tokenizer(list(texts), **kwargs)
    return [list(i) for i in enc["input_ids"]], None


def first_generated_token(
    tokenizer: Any, story: Story, ids: Sequence[int], offsets: Sequence[tuple[int, int]] | None
) -> int:
    """Index of the first token wholly inside the generated part of ``story.text``.

    With offsets: the first real token starting at or after the end of ``prompt_prefix``.
    Without (a slow tokenizer): the prefix's own token count plus one, so a token merged
    across the boundary is not pooled either. ``len(ids)`` when nothing was generated.
    """
    if not story.prompt_prefix or not story.text.startswith(story.prompt_prefix):
        return 0
    cut = len(story.prompt_prefix)
    if offsets is not None:
        for i, (a, b) in enumerate(offsets):
            if b > a and a >= cut:
                return i
        return len(ids)
    n_prefix = len(tokenizer(story.prompt_prefix, add_special_tokens=True)["input_ids"])
    return min(n_prefix + 1, len(ids))


def _span_text(
    tokenizer: Any,
    text: str,
    ids: Sequence[int],
    offsets: Sequence[tuple[int, int]] | None,
    start: int,
    end: int,
) -> str:
    if start >= end:
        return ""
    if offsets is None:
        return str(tokenizer.decode(list(ids[start:end]), skip_special_tokens=True))
    return text[offsets[start][0] : offsets[end - 1][1]]


def pool_windows(
    tokenizer: Any,
    records: Sequence[Story],
    ids: Sequence[Sequence[int]],
    offsets: Sequence[Sequence[tuple[int, int]]] | None,
    *,
    skip: int,
    short: Literal["skip", "clip"] = "skip",
    last: bool = False,
) -> Windows:
    """Where each story's pooling starts and what it pools (see the module docstring).

    ``last`` pools the final token only (when it lies in the generated part).
    """
    bos = has_bos(tokenizer, ids)
    starts: list[int] = []
    texts: list[str] = []
    for i, r in enumerate(records):
        n = len(ids[i])
        offs = offsets[i] if offsets is not None else None
        first = first_generated_token(tokenizer, r, ids[i], offs)
        if last:
            floor = max(first, 1)  # the first position is an attention sink (pool_start)
            start = n - 1 if n - 1 >= floor else n
        else:
            start = pool_start(n, skip, bos, first=first, clip=short == "clip")
        starts.append(start)
        texts.append(_span_text(tokenizer, r.text, ids[i], offs, start, n))
    return Windows(starts=starts, texts=texts)


def turn_token_ranges(
    tokenizer: Any, dialogue: Dialogue, ids: list[int]
) -> dict[str, list[tuple[int, int]]]:
    """Token ranges of each speaker's turn contents in ``render_turns(dialogue.turns)``.

    Uses the fast tokenizer's offset mapping; the ``Human:``/``Assistant:`` labels are not pooled.
    """
    text = render_turns(dialogue.turns)
    spans: dict[str, list[tuple[int, int]]] = {"human": [], "assistant": []}
    pos = 0
    char_spans: list[tuple[str, int, int]] = []
    for t in dialogue.turns:
        label = f"{'Human' if t.speaker == 'human' else 'Assistant'}: "
        start = text.index(label, pos) + len(label)
        end = start + len(t.text)
        char_spans.append((t.speaker, start, end))
        pos = end
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    offsets = enc["offset_mapping"][: len(ids)]
    for speaker, cs, ce in char_spans:
        toks = [
            i
            for i, (a, b) in enumerate(offsets)
            if b > a and a >= cs - 1 and b <= ce + 1 and a < ce
        ]
        if toks:
            spans[speaker].append((toks[0], toks[-1] + 1))
    return spans


@dataclass
class Moments:
    """Running first and second moments of token activations at one layer (shifted for stability)."""

    shift: torch.Tensor | None = None
    count: int = 0
    total: torch.Tensor | None = None
    outer: torch.Tensor | None = None
    norm_sum: float = 0.0

    def add(self, h: torch.Tensor) -> None:
        """Add ``[n, d]`` token activations."""
        if h.shape[0] == 0:
            return
        h = h.float()
        if self.shift is None:
            self.shift = h.mean(0)
            self.total = torch.zeros_like(self.shift)
            self.outer = torch.zeros(h.shape[1], h.shape[1], device=h.device)
        assert self.total is not None and self.outer is not None
        x = h - self.shift
        self.count += h.shape[0]
        self.total += x.sum(0)
        self.outer += x.T @ x
        self.norm_sum += float(h.norm(dim=-1).sum())

    def mean(self) -> torch.Tensor:
        """Mean activation."""
        assert self.shift is not None and self.total is not None
        return self.shift + self.total / max(self.count, 1)

    def cov(self) -> torch.Tensor:
        """Covariance matrix ``[d, d]``."""
        assert self.total is not None and self.outer is not None
        m = self.total / max(self.count, 1)
        return self.outer / max(self.count - 1, 1) - torch.outer(m, m) * (
            self.count / max(self.count - 1, 1)
        )

    @property
    def mean_norm(self) -> float:
        """Mean token norm ‖h‖ (the steering scale)."""
        return self.norm_sum / max(self.count, 1)


def _masks(batch: Batch, view: View, device: torch.device) -> torch.Tensor:
    if view.ranges is None:
        starts = view.starts
        if starts is None:
            raise ValueError(f"view {view.kind} has neither starts nor ranges")
        return pool_mask(batch, [starts[i] for i in batch.indices], device)
    width = batch.input_ids.shape[1]
    mask = torch.zeros(len(batch.indices), width, device=device)
    for r, i in enumerate(batch.indices):
        offset = width - batch.lengths[r] if batch.padding_side == "left" else 0
        for s, e in view.ranges[i]:
            mask[r, offset + s : offset + min(e, batch.lengths[r])] = 1.0
    return mask


def stream_pooled(
    lm: LoadedModel,
    ids: list[list[int]],
    views: list[View],
    layers: list[int],
    *,
    batch_tokens: int,
    on_pooled: Any,
    moments: dict[int, Moments] | None = None,
    desc: str = "",
) -> None:
    """One forward pass over ``ids``; calls ``on_pooled(view, indices, valid, {layer: [b, d]})``.

    Each view says which tokens of each text to pool (its ``starts`` or ``ranges``, indexed
    like ``ids``). ``moments`` (when given) accumulate every pooled token of the first view,
    for the z-score reference and the residual norm. A rich progress bar (texts done) is shown
    when ``desc`` is set and stderr is a terminal.
    """
    with _progress(desc, len(ids)) as advance:
        for batch, acts in iter_hidden(lm, ids, layers, batch_tokens=batch_tokens):
            _pool_batch(batch, acts, views, layers, on_pooled, moments)
            advance(len(batch.indices), int(sum(batch.lengths)))


@contextmanager
def _progress(desc: str, total: int, console: Any = None) -> Iterator[Callable[[int, int], None]]:
    """A rich bar fed per forward batch: documents done of total, tokens/s and time left.

    Shown only on a terminal (or on ``console``, for tests); otherwise a no-op.
    """
    if not desc or (console is None and not sys.stderr.isatty()):
        yield lambda _n, _t: None
        return
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    t0 = time.perf_counter()
    tokens = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("documents"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=console) as bar:
        task = bar.add_task(desc, total=total, rate="- tok/s")

        def advance(n: int, n_tokens: int) -> None:
            nonlocal tokens
            tokens += n_tokens
            rate = tokens / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.0f} tok/s", refresh=True)

        yield advance


def _pool_batch(
    batch: Batch,
    acts: dict[int, torch.Tensor],
    views: list[View],
    layers: list[int],
    on_pooled: Any,
    moments: dict[int, Moments] | None,
) -> None:
    device = next(iter(acts.values())).device
    for v_i, view in enumerate(views):
        mask = _masks(batch, view, device)
        valid = mask.sum(1) > 0
        denom = mask.sum(1, keepdim=True).clamp_min(1.0)
        pooled = {
            layer: torch.einsum("bs,bsd->bd", mask, acts[layer].float()) / denom for layer in layers
        }
        on_pooled(view, batch.indices, valid, pooled)
        if moments is not None and v_i == 0:
            sel = mask > 0
            for layer in layers:
                moments[layer].add(acts[layer][sel])


def text_hash(text: str) -> str:
    """sha256 (16 hex) of one record's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
