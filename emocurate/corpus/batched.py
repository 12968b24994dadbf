"""The dense stage of the regulation metrics for many documents at once, on their device.

:func:`emocurate.corpus.regulation.dense_series` reduces one document's ``[T, E]`` z-scores in
NumPy on one CPU thread: on a GPU that host work (and the host copy of every ``[T, E]`` matrix)
cost more than the forward pass on long documents. :func:`dense_batch` computes the same
:class:`~emocurate.corpus.regulation.DenseSeries` for a list of documents as padded float64
tensors on whatever device they are on (per-document lengths, edge windows of the moving
average clipped per document, per-column p95 with linear interpolation, means over each
document's own tokens), so the results match NumPy to rounding; only the 1-D series and ``[E]``
vectors come back to the host, where :func:`~emocurate.corpus.regulation.analyse_dense` runs the
sequential part. Documents are padded to the longest of a group of about ``group_tokens``
padded tokens (sorted by length), so memory is bounded by the group, not the list.

:func:`launch_dense_batch` only enqueues the work and the copies to pinned host memory on a
CUDA device, so the scorer can run the sequential part of the previous batch while the GPU
computes the next forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from emocurate.corpus.regulation import Axes, DenseSeries, TurnSpan, dense_series

GROUP_TOKENS = 1 << 16
"""Padded tokens per group: about 7 float64 ``[tokens, E]`` temporaries live at once
(E = 171: ~0.6 GB at this size)."""


@dataclass
class DeviceAxes:
    """:class:`Axes` as tensors on one device (built once per scorer: no host copies per batch)."""

    device: torch.device
    valence: torch.Tensor | None  # [E] float64
    arousal: torch.Tensor | None
    distress: torch.Tensor | None  # member indices (long)
    calm: torch.Tensor | None

    @classmethod
    def of(cls, axes: Axes, device: torch.device | str) -> DeviceAxes:
        dev = torch.device(device)

        def idx(members: list[int]) -> torch.Tensor | None:
            return torch.tensor(members, dtype=torch.long, device=dev) if members else None

        return cls(
            dev,
            torch.as_tensor(axes.valence, dtype=torch.float64, device=dev) if axes.has_va else None,
            torch.as_tensor(axes.arousal, dtype=torch.float64, device=dev) if axes.has_va else None,
            idx(axes.distress),
            idx(axes.calm),
        )


def _to_device(values: Sequence[int], device: torch.device) -> torch.Tensor:
    """A small long tensor on ``device`` without waiting for the stream (pinned, non-blocking)."""
    return _upload(torch.tensor(list(values), dtype=torch.long), device)


def _to_device_f64(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """As :func:`_to_device`, float64."""
    return _upload(torch.tensor(list(values), dtype=torch.float64), device)


def _pad64(zs: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """``[B, max T, C]`` float64 with zero padding (one copy per document, converting on the way)."""
    width = max(int(z.shape[0]) for z in zs)
    x = torch.empty((len(zs), width, int(zs[0].shape[1])), dtype=torch.float64, device=device)
    for row, z in enumerate(zs):
        x[row, : z.shape[0]].copy_(z)
        x[row, z.shape[0] :] = 0.0
    return x


def _upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def smooth_padded(x: torch.Tensor, lengths: Sequence[int], k: int) -> torch.Tensor:
    """:func:`~emocurate.corpus.regulation.smooth` of each document of a padded ``[B, T, C]``.

    Row ``b`` has ``lengths[b]`` real tokens (host ints: the edge positions are planned on the
    host, nothing waits for the device); windows at its edges average only its own tokens
    (never the padding); padded positions of the result are 0. Full windows are plain slices of
    the cumulative sum, as in NumPy; only the ``k - 1`` edge tokens of each document are
    gathered.
    """
    b, t = x.shape[:2]
    dev = x.device
    n_len = _to_device(lengths, dev)
    mask = (torch.arange(t, device=dev)[None, :] < n_len[:, None])[..., None]
    if k <= 1 or t == 0:
        return x.masked_fill(~mask, 0.0)
    x = x.masked_fill(~mask, 0.0) if min(lengths) < t else x  # zero padding for the sums
    half_lo, half_hi = (k - 1) // 2, k // 2
    csum = torch.empty((b, t + 1, *x.shape[2:]), dtype=x.dtype, device=dev)
    csum[:, 0] = 0.0
    torch.cumsum(x, dim=1, out=csum[:, 1:])
    out = torch.empty_like(x)  # every real position is written below; padding is zeroed
    if t >= k:  # full windows wherever they fit in the padded width
        interior = out[:, half_lo : t - half_hi]
        torch.sub(csum[:, k:], csum[:, : t + 1 - k], out=interior)
        interior.div_(k)
    rows: list[int] = []
    pos: list[int] = []
    lo: list[int] = []
    hi: list[int] = []
    for row, n in enumerate(lengths):  # each document's own edges (all of it when n < k)
        edges = (
            [*range(min(half_lo, n)), *range(max(n - half_hi, half_lo), n)]
            if n >= k
            else list(range(n))
        )
        for i in edges:
            rows.append(row)
            pos.append(i)
            lo.append(max(0, i - half_lo))
            hi.append(min(n, i + half_hi + 1))
    if rows:
        r, p = _to_device(rows, dev), _to_device(pos, dev)
        lo_t, hi_t = _to_device(lo, dev), _to_device(hi, dev)
        count = (hi_t - lo_t).to(x.dtype)
        count = count.view(-1, *([1] * (x.dim() - 2)))
        out[r, p] = (csum[r, hi_t] - csum[r, lo_t]) / count
    return out.masked_fill_(~mask, 0.0) if min(lengths) < t else out


def quantile_padded(x: torch.Tensor, lengths: Sequence[int], q: float) -> torch.Tensor:
    """Per-column ``q`` quantile of each document of a padded ``[B, T, C]`` (``lengths >= 1``).

    Linear interpolation between order statistics, as
    :func:`~emocurate.corpus.regulation.quantile_rows` and ``np.percentile`` (positions computed
    on the host with the same float arithmetic). Only the top ``max(n - floor(q (n - 1)))``
    values are selected (``topk``), not a full sort.
    """
    b, t, c = x.shape
    dev = x.device
    n_len = _to_device(lengths, dev)
    mask = (torch.arange(t, device=dev)[None, :] < n_len[:, None])[..., None]
    pos = [q * (n - 1) for n in lengths]
    lo = [int(np.floor(p)) for p in pos]
    hi = [int(np.ceil(p)) for p in pos]
    need = max(n - a for n, a in zip(lengths, lo, strict=True))
    # [B, C, T] contiguous: selection along the last, contiguous dimension (as NumPy's x.T)
    cols = x.transpose(1, 2).contiguous()
    cols.masked_fill_(~mask.transpose(1, 2), float("-inf"))
    top = cols.topk(need, dim=2, largest=True, sorted=True).values  # [B, C, need]
    # ascending rank r of a document of n tokens sits at descending index n - 1 - r
    i_lo = _to_device([n - 1 - a for n, a in zip(lengths, lo, strict=True)], dev)
    i_hi = _to_device([n - 1 - a for n, a in zip(lengths, hi, strict=True)], dev)
    frac = _to_device_f64([p - a for p, a in zip(pos, lo, strict=True)], dev)
    v_lo = top.gather(2, i_lo.view(b, 1, 1).expand(b, c, 1)).squeeze(2)
    v_hi = top.gather(2, i_hi.view(b, 1, 1).expand(b, c, 1)).squeeze(2)
    return v_lo + (v_hi - v_lo) * frac[:, None]


@dataclass
class _Group:
    """One padded group's results on their way to the host."""

    index: list[int]  # positions in the input list
    lengths: list[int]
    out: dict[str, torch.Tensor]
    turn_rows: list[tuple[int, int]]  # (row in group, turn index) of each row of out["turns"]
    reg_rows: list[int]  # rows in group with regulation (rows of out["reg"])


def _host(t: torch.Tensor, non_blocking: bool) -> torch.Tensor:
    if t.device.type == "cpu":
        return t
    if non_blocking and t.device.type == "cuda":
        buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        buf.copy_(t, non_blocking=True)
        return buf
    return t.cpu()


@dataclass
class DenseHandle:
    """Dense results being computed (and copied) on the device; :meth:`result` waits for them."""

    n: int
    groups: list[_Group]
    empties: dict[int, DenseSeries]
    top_tokens: int | None
    keep_smoothed: bool
    event: Any = None
    _done: list[DenseSeries] | None = field(default=None, repr=False)

    def result(self) -> list[DenseSeries]:
        """One :class:`DenseSeries` per input document, in input order."""
        if self._done is not None:
            return self._done
        if self.event is not None:
            self.event.synchronize()
        res: list[DenseSeries | None] = [None] * self.n
        for i, ds in self.empties.items():
            res[i] = ds
        for g in self.groups:
            a = {k: v.numpy() for k, v in g.out.items()}
            turns: dict[int, list[tuple[int, int]]] = {}
            for r, (row, j) in enumerate(g.turn_rows):
                turns.setdefault(row, []).append((j, r))
            for row, (i, t) in enumerate(zip(g.index, g.lengths, strict=True)):
                res[i] = self._series(a, g, row, t, turns.get(row, []))
        self._done = [r for r in res if r is not None]
        if len(self._done) != self.n:
            raise RuntimeError(
                "dense_batch lost a document"
            )  # cannot happen: every input is placed
        return self._done

    def _series(
        self,
        a: dict[str, np.ndarray],
        g: _Group,
        row: int,
        t: int,
        turns: list[tuple[int, int]],
    ) -> DenseSeries:
        def series(name: str) -> np.ndarray | None:
            return a[name][row, :t] if name in a else None

        n_turns = int(a["n_turns"][row])
        tm = np.zeros((n_turns, a["mean"].shape[1]))
        td = np.zeros(n_turns) if "distress" in a else None
        for j, r in turns:
            tm[j] = a["turns"][r]
            if td is not None:
                td[j] = a["turn_distress"][r]
        reg = reg_raw = None
        if row in g.reg_rows:
            rr = g.reg_rows.index(row)
            reg, reg_raw = a["reg"][rr, :t], a["reg_raw"][rr, :t]
        top: dict[int, np.ndarray] = {}
        if "top_idx" in a:
            n = t if self.top_tokens is None else min(t, self.top_tokens)
            for j, col in enumerate(a["top_idx"][row].tolist()):
                top[int(col)] = a["top"][row, :n, j].copy()
        return DenseSeries(
            t,
            a["mean"][row],
            a["p95"][row],
            series("valence"),
            series("arousal"),
            series("distress"),
            series("distress_raw"),
            series("calm"),
            reg,
            reg_raw,
            tm,
            td,
            top,
            a["smoothed"][row, :t].copy() if self.keep_smoothed else None,
        )


def _groups(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices of non-empty documents, longest first, in groups of at most ``budget`` padded tokens."""
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        # Sorted longest first: the group's first document sets its padded length.
        if out and (len(out[-1]) + 1) * lengths[out[-1][0]] <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def launch_dense_batch(
    zs: Sequence[torch.Tensor],
    axes: Axes,
    smooth_k: int,
    *,
    regulations: Sequence[torch.Tensor | None] | None = None,
    turns: Sequence[Sequence[TurnSpan]] | None = None,
    keep_smoothed: bool = False,
    top_k: int = 0,
    top_tokens: int | None = None,
    group_tokens: int = GROUP_TOKENS,
    device_axes: DeviceAxes | None = None,
    non_blocking: bool = True,
) -> DenseHandle:
    """Enqueue :func:`dense_batch` (see there); ``result()`` on the handle waits for it.

    With ``non_blocking`` on a CUDA device nothing here waits for the stream: index tensors go
    up from pinned memory and the results come down into pinned buffers behind one event.
    """
    regs = list(regulations) if regulations is not None else [None] * len(zs)
    spans = [list(t) for t in turns] if turns is not None else [[] for _ in zs]
    if len(regs) != len(zs) or len(spans) != len(zs):
        raise ValueError("regulations and turns must have one entry per document")
    lengths = [int(z.shape[0]) for z in zs]
    empties = {
        i: dense_series(
            np.zeros((0, int(z.shape[1]))),
            axes,
            smooth_k,
            turns=spans[i],
            keep_smoothed=keep_smoothed,
            top_k=top_k,
            top_tokens=top_tokens,
        )
        for i, z in enumerate(zs)
        if lengths[i] == 0
    }
    groups: list[_Group] = []
    any_cuda = False
    for idx in _groups(lengths, group_tokens):
        dev = zs[idx[0]].device
        any_cuda = any_cuda or dev.type == "cuda"
        dax = device_axes if device_axes is not None and device_axes.device == dev else None
        dax = dax or DeviceAxes.of(axes, dev)
        out, turn_rows, reg_rows = _dense_group(
            [zs[i] for i in idx],
            [regs[i] for i in idx],
            [spans[i] for i in idx],
            dax,
            smooth_k,
            keep_smoothed=keep_smoothed,
            top_k=top_k,
            top_tokens=top_tokens,
        )
        host = {k: _host(v, non_blocking) for k, v in out.items()}
        groups.append(_Group(idx, [lengths[i] for i in idx], host, turn_rows, reg_rows))
    event = None
    if non_blocking and any_cuda:
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]  # torch stubs leave it untyped
        event.record()
    return DenseHandle(len(zs), groups, empties, top_tokens, keep_smoothed, event)


def dense_batch(
    zs: Sequence[torch.Tensor],
    axes: Axes,
    smooth_k: int,
    *,
    regulations: Sequence[torch.Tensor | None] | None = None,
    turns: Sequence[Sequence[TurnSpan]] | None = None,
    keep_smoothed: bool = False,
    top_k: int = 0,
    top_tokens: int | None = None,
    group_tokens: int = GROUP_TOKENS,
    device_axes: DeviceAxes | None = None,
) -> list[DenseSeries]:
    """:func:`~emocurate.corpus.regulation.dense_series` of many documents, batched on their device.

    Args:
        zs: per document ``[T_i, E]`` z-scores (any float dtype; computed in float64).
        axes: valence/arousal weights and the distress/calm members.
        smooth_k: moving-average window in tokens.
        regulations: per document ``[T_i, R]`` regulation z-scores or None.
        turns: per document dialogue turns.
        keep_smoothed: also return each whole smoothed matrix (host memory ``[T, E]``).
        top_k, top_tokens: keep the smoothed columns of the ``top_k`` highest means (first
            ``top_tokens`` tokens), what a token trace shows.
        group_tokens: padded tokens per group (bounds device memory).
        device_axes: ``axes`` already on the device (else built per call).
    """
    return launch_dense_batch(
        zs,
        axes,
        smooth_k,
        regulations=regulations,
        turns=turns,
        keep_smoothed=keep_smoothed,
        top_k=top_k,
        top_tokens=top_tokens,
        group_tokens=group_tokens,
        device_axes=device_axes,
        non_blocking=False,
    ).result()


def _dense_group(
    zs: list[torch.Tensor],
    regs: list[torch.Tensor | None],
    spans: list[list[TurnSpan]],
    dax: DeviceAxes,
    smooth_k: int,
    *,
    keep_smoothed: bool,
    top_k: int,
    top_tokens: int | None,
) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]], list[int]]:
    """Device tensors of one group (documents of length >= 1 on one device)."""
    dev = dax.device
    lengths = [int(z.shape[0]) for z in zs]
    n_len = _to_device(lengths, dev)
    x = _pad64(zs, dev)  # [B, T, E]
    b, t, e = x.shape
    xs = smooth_padded(x, lengths, smooth_k)
    mean = xs.sum(1) / n_len[:, None].to(torch.float64)
    out: dict[str, torch.Tensor] = {"mean": mean, "p95": quantile_padded(xs, lengths, 0.95)}
    out["n_turns"] = torch.tensor([len(s) for s in spans], dtype=torch.long)  # host already
    if dax.valence is not None and dax.arousal is not None:
        out["valence"] = xs.clamp_min(0.0) @ dax.valence  # as regulation.valence_of
        out["arousal"] = xs.clamp_min(0.0) @ dax.arousal  # as regulation.arousal_of
    if dax.distress is not None:
        out["distress"] = xs.index_select(2, dax.distress).mean(2)
        out["distress_raw"] = x.index_select(2, dax.distress).mean(2)
    if dax.calm is not None:
        out["calm"] = xs.index_select(2, dax.calm).mean(2)
    if top_k:
        k = min(top_k, e)
        order = torch.argsort(-mean, dim=1, stable=True)[:, :k]
        tt = t if top_tokens is None else min(t, top_tokens)
        out["top_idx"] = order
        out["top"] = xs[:, :tt].gather(2, order[:, None, :].expand(b, tt, k))
    if keep_smoothed:
        out["smoothed"] = xs
    turn_rows: list[tuple[int, int]] = []
    cuts: list[tuple[int, int, int]] = []
    for row, (n, ss) in enumerate(zip(lengths, spans, strict=True)):
        for j, sp in enumerate(ss):
            lo, hi = min(max(sp.start, 0), n), min(max(sp.end, 0), n)
            if hi > lo:
                turn_rows.append((row, j))
                cuts.append((row, lo, hi))
    if cuts:
        csum = torch.zeros((b, t + 1, e), dtype=torch.float64, device=dev)
        torch.cumsum(x, dim=1, out=csum[:, 1:])
        tb = _to_device([c[0] for c in cuts], dev)
        ts = _to_device([c[1] for c in cuts], dev)
        te = _to_device([c[2] for c in cuts], dev)
        tmeans = (csum[tb, te] - csum[tb, ts]) / (te - ts).to(torch.float64)[:, None]
        out["turns"] = tmeans
        if dax.distress is not None:
            out["turn_distress"] = tmeans.index_select(1, dax.distress).mean(1)
    reg_rows = [r for r, z in enumerate(regs) if z is not None and z.numel()]
    if reg_rows:
        rz = _pad64([regs[r] for r in reg_rows], dev)  # type: ignore[misc]
        r_len = [int(regs[r].shape[0]) for r in reg_rows]  # type: ignore[union-attr]
        out["reg"] = smooth_padded(rz, r_len, smooth_k).mean(2)
        out["reg_raw"] = rz.mean(2)
    return out, turn_rows, reg_rows
