"""Score a corpus: token activations at the probe layer, projected on every emotion vector.

The :class:`Scorer` is pure per batch (documents in, rows out; no files), so the local engine
and the Ray engine run the same code. It has two halves so Ray can run them on different
workers: :meth:`Scorer.prepare` (CPU: tokenise, cut long documents into overlapping windows,
find dialogue turns) and :meth:`Scorer.run` (model: one forward pass per length-bucketed batch,
stopped at the probe layer, then z-scored projections and the regulation metrics).

Windows: a document longer than the window is cut into windows that start every ``stride``
tokens; each window is run with its own BOS and the first window contributes all its tokens,
every later one only the tokens past the previous window's end. Every token therefore keeps
the longest left context available and the stitched sequence has exactly one value per token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emocurate.artifacts import TraceRow
from emocurate.configs import MetricConfig, ScoreConfig
from emocurate.corpus.batched import DenseHandle, DeviceAxes, launch_dense_batch
from emocurate.corpus.calibration import (
    CALIBRATION_FILE,
    load_calibration,
)
from emocurate.corpus.prepared import Prepared
from emocurate.corpus.readers import Doc, DocLike, as_docs
from emocurate.corpus.regulation import (
    Analysis,
    Axes,
    DenseSeries,
    TurnSpan,
    analyse,
    analyse_dense,
    n_pairs,
)
from emocurate.corpus.rows import CorpusScore
from emocurate.errors import ConfigError, InputError
from emocurate.records import Flag
from emocurate.vectors.capture import context_length, iter_hidden
from emocurate.vectors.models import LoadedModel
from emocurate.vectors.vectorset import VectorSet

TURN_RE = re.compile(r"^[ \t]*(Human|User|Assistant|AI)[ \t]*:[ \t]?", re.MULTILINE)
ASSISTANT_LABELS = {"assistant", "ai"}


@dataclass
class ScoredDoc:
    """A row plus, when asked, the token-level trace for the HTML report."""

    row: CorpusScore
    trace: TraceRow | None = None
    # Flag spans as CHARACTER offsets into the document text: (kind, start, end, severity);
    # None when the tokenizer gives no offsets (a slow tokenizer).
    char_spans: list[tuple[str, int, int, float]] | None = None


@dataclass
class _Group:
    layer: int
    weight: torch.Tensor  # [E, d] unit rows
    mean: torch.Tensor | None
    std: torch.Tensor | None


@dataclass
class _Pending:
    """Projections of one batch on their way to the host (``event`` set when copied asynchronously)."""

    host: list[torch.Tensor]
    event: Any

    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.event is not None:
            self.event.synchronize()
        arrays = [h.numpy().astype(np.float32, copy=False) for h in self.host]
        return arrays[0], (np.concatenate(arrays[1:], axis=-1) if len(arrays) > 1 else None)


@dataclass
class _DensePending:
    """Documents completed by one batch whose dense metrics are computing on the device."""

    docs: list[int]
    handle: DenseHandle


@dataclass
class _Chunk:
    """Per-chunk state of :meth:`Scorer.run_chunks`: windows, stitched scores, finished rows.

    On the host path the scores are stitched into ``z``/``zr`` (NumPy); on the device path
    into ``zd``/``zrd`` (tensors on the model's device; ``z``/``zr`` then stay empty).
    """

    prepared: Sequence[Prepared]
    seqs: list[list[int]]
    owners: list[tuple[int, int]]
    remaining: list[int]
    z: list[np.ndarray]
    zr: list[np.ndarray] | None
    done: dict[int, ScoredDoc]
    zd: list[torch.Tensor] | None = None
    zrd: list[torch.Tensor] | None = None

    @classmethod
    def build(
        cls,
        prepared: Sequence[Prepared],
        bos: int | None,
        e_main: int,
        e_reg: int,
        device: torch.device | None = None,
    ) -> _Chunk:
        seqs: list[list[int]] = []
        owners: list[tuple[int, int]] = []
        remaining = [0] * len(prepared)
        for di, p in enumerate(prepared):
            for wi, (start, length, _keep) in enumerate(p.windows):
                if length == 0:
                    continue
                seqs.append(([bos] if bos is not None else []) + p.ids[start : start + length])
                owners.append((di, wi))
                remaining[di] += 1
        host = [0 if device is not None else len(p.ids) for p in prepared]
        z = [np.zeros((n, e_main), dtype=np.float32) for n in host]
        zr = [np.zeros((n, e_reg), dtype=np.float32) for n in host] if e_reg else None
        zd = zrd = None
        if device is not None:
            zd = [torch.zeros((len(p.ids), e_main), device=device) for p in prepared]
            if e_reg:
                zrd = [torch.zeros((len(p.ids), e_reg), device=device) for p in prepared]
        return cls(prepared, seqs, owners, remaining, z, zr, {}, zd, zrd)

    def stitch(
        self, batch: Any, main: Any, reg: Any, skip: int, z: Sequence[Any], zr: Sequence[Any] | None
    ) -> list[int]:
        """Copy one batch's window scores into their documents' rows (``z``/``zr``: host arrays or
        device tensors); return the documents whose last window this batch held."""
        completed: list[int] = []
        for r, si in enumerate(batch.indices):
            di, wi = self.owners[si]
            start, length, keep = self.prepared[di].windows[wi]
            lo, hi = skip + keep, skip + length
            z[di][start + keep : start + length] = main[r, lo:hi]
            if reg is not None and zr is not None:
                zr[di][start + keep : start + length] = reg[r, lo:hi]
            self.remaining[di] -= 1
            if self.remaining[di] == 0:
                completed.append(di)
        return completed

    def finish(self, di: int, scorer: Scorer) -> None:
        self.done[di] = scorer._finish(
            self.prepared[di], self.z[di], self.zr[di] if self.zr is not None else None
        )
        self.z[di] = self.z[di][:0]  # free the matrix as soon as the row exists
        if self.zr is not None:
            self.zr[di] = self.zr[di][:0]

    def finish_dense(self, di: int, dense: DenseSeries, scorer: Scorer) -> None:
        """The row of a document whose dense metrics came back from the device."""
        self.done[di] = scorer._finish_dense(self.prepared[di], dense)

    def finish_empty(self, scorer: Scorer) -> None:
        """Rows for documents without tokens (they have no windows)."""
        for di, p in enumerate(self.prepared):
            if not p.ids and di not in self.done:
                self.finish(di, scorer)

    def complete(self) -> bool:
        return len(self.done) == len(self.prepared)

    def results(self) -> list[ScoredDoc]:
        return [self.done[i] for i in range(len(self.prepared))]


def plan_windows(n: int, length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows ``(start, length, keep_from)`` over ``n`` body tokens; kept parts tile ``[0, n)``."""
    if n <= length:
        return [(0, n, 0)]
    out = [(0, length, 0)]
    start = 0
    while start + length < n:
        nxt = start + stride
        seg = min(length, n - nxt)
        out.append((nxt, seg, start + length - nxt))
        start = nxt
    return out


def find_turns(text: str) -> list[tuple[str, int, int]]:
    """``(speaker, char_start, char_end)`` of ``Human:``/``Assistant:`` turns (labels excluded).

    A text is a dialogue only when it has at least two turns and both speakers.
    """
    marks = list(TURN_RE.finditer(text))
    if len(marks) < 2:
        return []
    turns = []
    for m, nxt in zip(marks, [*marks[1:], None], strict=False):
        speaker = "assistant" if m.group(1).lower() in ASSISTANT_LABELS else "human"
        end = nxt.start() if nxt is not None else len(text)
        turns.append((speaker, m.end(), end))
    if len({t[0] for t in turns}) < 2:
        return []
    return turns


def clean_offsets(offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token character offsets that never overlap.

    SentencePiece tokenizers emit a bare ``▁`` before some characters with the same offsets as
    the character itself, so ``text[a:b]`` of consecutive tokens would repeat it ("AA"); such a
    token is cut back to end where the next one starts.
    """
    out = [(int(a), int(b)) for a, b in offsets]
    for k in range(len(out) - 1, 0, -1):
        a, b = out[k - 1]
        nxt = out[k][0]
        if b > nxt:
            out[k - 1] = (min(a, nxt), nxt)
    return out


def char_spans(p: Prepared, flags: Sequence[Flag]) -> list[tuple[str, int, int, float]] | None:
    """Each flag's token span ``[start, end)`` as character offsets into ``p.doc.text``.

    The span runs from the first character of the first flagged token to the last character
    of the last one (exact token boundaries, not widened to words), so ``text[start:end]`` is
    the flagged text itself. ``None`` without token offsets.
    """
    if not p.offsets and p.ids:
        return None
    out: list[tuple[str, int, int, float]] = []
    for f in flags:
        if f.end <= f.start or not p.offsets:
            continue
        a = p.offsets[min(f.start, len(p.offsets) - 1)][0]
        b = p.offsets[min(f.end, len(p.offsets)) - 1][1]
        out.append((f.kind, int(a), int(max(a, b)), float(f.severity)))
    return out


def word_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole words (to the nearest whitespace on each side)."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


class Preparer:
    """The CPU half of scoring: tokenise, plan windows, find dialogue turns (no model needed)."""

    def __init__(self, tokenizer: Any, window: int, stride: int | None = None) -> None:
        self.tokenizer = tokenizer
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        bos = tokenizer.bos_token_id
        self.bos: int | None = bos if bos is not None and probe[:1] == [bos] else None
        self.body_len = window - (1 if self.bos is not None else 0)
        if self.body_len < 2:
            raise ConfigError(f"window {window} is too short")
        self.stride = stride or max(1, self.body_len * 3 // 4)
        if self.stride > self.body_len:
            raise ConfigError(
                f"stride {self.stride} is longer than the window body {self.body_len}; "
                "tokens between windows would be lost"
            )

    def prepare(self, docs: Sequence[Doc], *, start_index: int = 0) -> list[Prepared]:
        """Tokenise and window documents."""
        tok = self.tokenizer
        texts = [d.text for d in docs]
        fast = bool(getattr(tok, "is_fast", False))
        # One batched call: the Rust tokenizer encodes the batch in parallel.
        enc = (
            tok(texts, add_special_tokens=False, return_offsets_mapping=fast)
            if texts
            else {"input_ids": []}
        )
        out: list[Prepared] = []
        for i, doc in enumerate(docs):
            ids = list(enc["input_ids"][i])
            offsets = clean_offsets(enc["offset_mapping"][i]) if fast else []
            windows = plan_windows(len(ids), self.body_len, self.stride)
            turns: list[tuple[str, int, int]] = []
            char_turns = find_turns(doc.text)
            if char_turns and offsets:
                starts = np.array([o[0] for o in offsets], dtype=np.int64)
                for speaker, cs, ce in char_turns:
                    ts, te = int(np.searchsorted(starts, cs)), int(np.searchsorted(starts, ce))
                    if te > ts:
                        turns.append((speaker, ts, te))
            out.append(Prepared(doc, start_index + i, ids, offsets, windows, turns))
        return out


class Scorer:
    """Scores batches of documents (reader Docs or ``(doc_id, text)`` pairs); shared by the local
    and Ray engines."""

    def __init__(
        self,
        vs: VectorSet,
        lm: LoadedModel,
        cfg: ScoreConfig,
        *,
        regulation: VectorSet | None = None,
    ) -> None:
        if vs.meta.hidden_size != lm.hidden_size:
            raise ConfigError(
                f"vector set was fitted on '{vs.meta.model_id}' (hidden {vs.meta.hidden_size}) but the "
                f"model '{lm.model_id}' has hidden size {lm.hidden_size}"
            )
        self.vs, self.lm, self.cfg = vs, lm, cfg
        self.mcfg = cfg.metric_config()
        self.layer = vs.layer_or_default(cfg.layer)
        if self.layer >= lm.n_layers:
            raise ConfigError(
                f"probe layer {self.layer} is beyond the model's {lm.n_layers} layers"
            )
        self.window = cfg.window or context_length(lm)
        self.preparer = Preparer(lm.tokenizer, self.window, cfg.stride)
        tok = lm.tokenizer
        self.bos = self.preparer.bos
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.names = list(vs.names)
        self.axes = Axes.for_names(self.names)
        self.on_batch: Callable[[int, int], None] | None = None
        """Progress only (the command's bar): called after each forward batch with the number of
        documents it completed and the tokens it ran; never changes a result."""
        dev = lm.device
        self.groups = [self._group(vs, self.layer, dev)]
        self.reg_names: list[str] = []
        if vs.meta.kind == "regulation":
            self.reg_names = list(vs.names)
        if regulation is not None:
            if regulation.meta.hidden_size != lm.hidden_size:
                raise ConfigError(
                    "regulation vectors were fitted on a model with a different hidden size"
                )
            self.groups.append(self._group(regulation, regulation.layer_or_default(None), dev))
            self.reg_names = list(regulation.names)
        self.layers = sorted({g.layer for g in self.groups})
        self.offsets = self._position_offsets(dev)
        self.metrics_on_device = self._metrics_on_device()
        self.device_axes = DeviceAxes.of(self.axes, dev) if self.metrics_on_device else None

    def _position_offsets(self, dev: torch.device) -> list[torch.Tensor] | None:
        """Per vector group, the calibration's position profile as ``[window, E_g]`` (None when
        flags are not calibrated): subtracted from every window's z-scores in :meth:`_project`
        so neutral text reads alike at every position (see ``PositionProfile``)."""
        cal = self.cfg.calibration
        if cal is None or self.cfg.z_thresholds or cal.positions is None:
            return None
        prof = cal.positions
        want = [*self.names, *(self.reg_names if len(self.groups) > 1 else [])]
        if prof.columns != want:
            raise ConfigError(
                f"calibration position profile is for columns {prof.columns[:4]}..., the vectors "
                f"have {want[:4]}...; rerun `emocurate calibrate`"
            )
        table = torch.as_tensor(prof.table(self.window + 1), dtype=torch.float32, device=dev)
        out, lo = [], 0
        for g in self.groups:
            out.append(table[:, lo : lo + g.weight.shape[0]])
            lo += g.weight.shape[0]
        return out

    def _metrics_on_device(self) -> bool:
        """Whether the dense metrics run batched on the model's device (``metrics_device``)."""
        where, dev = self.cfg.metrics_device, self.lm.device
        if where == "device" and dev.type == "mps":
            raise ConfigError(
                "metrics_device=device needs float64 on the device; MPS has none (use host)"
            )
        return where == "device" or (where == "auto" and dev.type == "cuda")

    def _analysed(self, an: Analysis, n_tokens: int) -> Analysis:
        """``an`` with its calibrated ``distress_pct``; without its flags when flags are off
        (not calibrated)."""
        cal, m = self.cfg.calibration, an.metrics
        if cal is not None and not self.cfg.z_thresholds:
            pairs = int(m.get("coreg_n") or 1)  # as the threshold: P pairs
            m.update(cal.percentiles(m["distress_level"], m["mirroring_level"], n_tokens, pairs))
        if self.cfg.flags_off:
            an.flags.clear()
            if an.metrics.get("n_mirroring") is not None:
                an.metrics["n_mirroring"] = 0.0
        return an

    def doc_metric_config(self, n_tokens: int, turns: Sequence[TurnSpan] = ()) -> MetricConfig:
        """Thresholds for one document: calibrated at ``fpr`` for its length (scored tokens and
        human->assistant pairs), else the z units."""
        cal = self.cfg.calibration
        if cal is None or self.cfg.z_thresholds:
            return self.mcfg
        return cal.metric_config(self.mcfg, self.cfg.fpr, n_tokens, n_pairs(turns))

    @staticmethod
    def _group(vs: VectorSet, layer: int, dev: torch.device) -> _Group:
        mean = vs.ref_mean[layer].float().to(dev) if layer in vs.ref_mean else None
        std = vs.ref_std[layer].float().clamp_min(1e-6).to(dev) if layer in vs.ref_std else None
        return _Group(layer, vs.unit(layer).to(dev), mean, std)

    def prepare(self, docs: Sequence[Doc], *, start_index: int = 0) -> list[Prepared]:
        """Tokenise and window documents (see :meth:`Preparer.prepare`)."""
        return self.preparer.prepare(docs, start_index=start_index)

    # -- model half -----------------------------------------------------------------------
    def run(self, prepared: Sequence[Prepared]) -> list[ScoredDoc]:
        """Forward passes (stopped at the probe layer) and metrics for prepared documents."""
        return self._cap_traces([r for part in self.run_chunks([prepared]) for r in part])

    def run_chunks(self, chunks: Iterable[Sequence[Prepared]]) -> Iterator[list[ScoredDoc]]:
        """Score a stream of prepared chunks, yielding each chunk's rows in order.

        Software-pipelined on an accelerator: batch k+1 is launched (asynchronously) before the
        CPU stitches batch k's projections and computes the metrics of the documents it
        completes, across chunk boundaries too, so the CPU work hides behind the GPU without a
        second Python thread (which would fight the forward pass for the GIL). At most two
        chunks' score matrices are alive at once. With the metrics on the device
        (``metrics_device``), batch k's projections are stitched into device tensors and the
        dense metrics of the documents it completes are enqueued right behind its forward, so
        only their 1-D series come back while batch k+1 runs; the sequential part then runs on
        the host.
        """
        pipelined = self._overlap()
        skip = 1 if self.bos is not None else 0
        e_main = len(self.names)
        e_reg = sum(g.weight.shape[0] for g in self.groups[1:])
        on_device = self.lm.device if self.metrics_on_device else None
        open_chunks: list[_Chunk] = []
        previous: tuple[_Chunk, Any, _Pending | _DensePending] | None = None

        def launch(chunk: _Chunk, batch: Any, acts: dict[int, torch.Tensor]) -> Any:
            if on_device is None:
                return (chunk, batch, self._launch_projection(acts, pipelined))
            return (chunk, batch, self._launch_dense(chunk, batch, acts, pipelined))

        def consume(chunk: _Chunk, batch: Any, pending: _Pending | _DensePending) -> None:
            if isinstance(pending, _DensePending):
                for di, dense in zip(pending.docs, pending.handle.result(), strict=True):
                    chunk.finish_dense(di, dense, self)
                if self.on_batch is not None:
                    self.on_batch(len(pending.docs), sum(batch.lengths))
                return
            main, reg = pending.result()
            finished = 0
            for di in chunk.stitch(batch, main, reg, skip, chunk.z, chunk.zr):
                chunk.finish(di, self)
                finished += 1
            if self.on_batch is not None:
                self.on_batch(finished, sum(batch.lengths))

        def ready() -> Iterator[list[ScoredDoc]]:
            while open_chunks and open_chunks[0].complete():
                yield open_chunks.pop(0).results()

        for prepared in chunks:
            chunk = _Chunk.build(prepared, self.bos, e_main, e_reg, on_device)
            open_chunks.append(chunk)
            for batch, acts in iter_hidden(
                self.lm, chunk.seqs, self.layers, batch_tokens=self.cfg.batch_tokens
            ):
                current = launch(chunk, batch, acts)
                if previous is not None:
                    consume(*previous)
                previous = current
                if not pipelined:
                    consume(*previous)
                    previous = None
                yield from ready()
            chunk.finish_empty(self)
            yield from ready()
        if previous is not None:
            consume(*previous)
        yield from ready()

    def _project(self, acts: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        """Z-scored projections ``[batch, seq, E_g]`` of each vector group, on the device.

        Without a BOS (SmolLM2) a window's first token is the attention sink (norm ~22,000
        against ~200): its projections are hundreds of z and smoothing spread them over the
        first tokens (the demo's traces started at distress -24 or arousal 6.6). The fit never
        pools that position (``capture.pool_start``); here it reads 0 z before the position
        profile, as the calibration reference's sink did, so both read the same after it.
        Later windows never keep their first token (:func:`plan_windows`)."""
        projs = []
        for i, g in enumerate(self.groups):
            proj = acts[g.layer].float() @ g.weight.T
            if g.mean is not None and g.std is not None:
                proj = (proj - g.mean) / g.std
            if self.bos is None:  # the first token is the attention sink: it reads neutral
                proj[:, :1] = 0.0
            if self.offsets is not None:  # neutral text's level at each position
                proj = proj - self.offsets[i][: proj.shape[1]]
            projs.append(proj)
        return projs

    def _launch_dense(
        self, chunk: _Chunk, batch: Any, acts: dict[int, torch.Tensor], pipelined: bool
    ) -> _DensePending:
        """Device path: stitch the projections into per-document device tensors and enqueue the
        dense metrics of the documents this batch completes (no ``[T, E]`` host copy)."""
        assert chunk.zd is not None
        projs = self._project(acts)
        main = projs[0]
        reg = torch.cat(projs[1:], dim=-1) if len(projs) > 1 else None
        skip = 1 if self.bos is not None else 0
        docs = chunk.stitch(batch, main, reg, skip, chunk.zd, chunk.zrd)
        zs = [chunk.zd[di] for di in docs]
        if chunk.zrd is not None:
            regs: list[torch.Tensor | None] = [chunk.zrd[di] for di in docs]
        elif self.vs.meta.kind == "regulation":
            regs = list(zs)
        else:
            regs = [None] * len(docs)
        handle = launch_dense_batch(
            zs,
            self.axes,
            self.mcfg.smooth,
            regulations=regs,
            turns=[[TurnSpan(*t) for t in chunk.prepared[di].turns] for di in docs],
            top_k=self.cfg.trace_top,
            top_tokens=self.cfg.trace_max_tokens,
            device_axes=self.device_axes,
            non_blocking=pipelined,
        )
        for di in docs:  # the queued kernels keep what they read; the chunk lets go
            chunk.zd[di] = chunk.zd[di][:0]
            if chunk.zrd is not None:
                chunk.zrd[di] = chunk.zrd[di][:0]
        return _DensePending(docs, handle)

    def _launch_projection(self, acts: dict[int, torch.Tensor], pipelined: bool) -> _Pending:
        """Project on the device and start an asynchronous copy of the (small) result to the host."""
        projs = self._project(acts)
        dev = next(iter(acts.values())).device
        if not pipelined or dev.type != "cuda":
            return _Pending([p.cpu() for p in projs], None)
        host = []
        for p in projs:
            buf = torch.empty(p.shape, dtype=p.dtype, pin_memory=True)
            buf.copy_(p, non_blocking=True)
            host.append(buf)
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]  # torch stubs leave it untyped
        event.record()
        return _Pending(host, event)

    def _cap_traces(self, out: list[ScoredDoc]) -> list[ScoredDoc]:
        """Keep traces for the first ``trace_flagged`` flagged documents (input order: deterministic)."""
        flagged = 0
        for sd in out:
            if sd.trace is not None and sd.row.flags:
                flagged += 1
                if flagged > self.cfg.trace_flagged:
                    sd.trace = None
        return out

    def _finish(self, p: Prepared, z: np.ndarray, zr: np.ndarray | None) -> ScoredDoc:
        regulation: np.ndarray | None = zr
        if regulation is None and self.vs.meta.kind == "regulation":
            regulation = z
        spans = [TurnSpan(s, a, b) for s, a, b in p.turns]
        mcfg = self.doc_metric_config(len(z), spans)
        an = self._analysed(analyse(z, self.axes, mcfg, regulation=regulation, turns=spans), len(z))
        return self._row(p, an)

    def _finish_dense(self, p: Prepared, dense: DenseSeries) -> ScoredDoc:
        """The sequential metrics and row of a document whose dense stage ran batched."""
        spans = [TurnSpan(s, a, b) for s, a, b in p.turns]
        mcfg = self.doc_metric_config(dense.n_tokens, spans)
        an = self._analysed(analyse_dense(dense, self.axes, mcfg, turns=spans), dense.n_tokens)
        return self._row(p, an)

    def _row(self, p: Prepared, an: Analysis) -> ScoredDoc:
        flags = [self._evidence(p, f) for f in an.flags]
        row = CorpusScore.of(p, an, self.names, flags)
        trace = None
        if row.flags or p.index < self.cfg.trace_others:
            trace = self._trace(p, an, flags)
        return ScoredDoc(row, trace, char_spans(p, an.flags))

    def _evidence(self, p: Prepared, f: Flag) -> Flag:
        """Append the flagged text (from token offsets, widened to whole words) to the evidence."""
        if not p.offsets or f.end <= f.start:
            return f
        cs, ce = p.offsets[f.start][0], p.offsets[min(f.end, len(p.offsets)) - 1][1]
        text = p.doc.text
        cs, ce = word_span(text, cs, ce)
        snippet = " ".join(text[cs:ce].split())
        if len(snippet) > 160:
            snippet = snippet[:77] + " ... " + snippet[-78:]
        return f.model_copy(update={"evidence": f'{f.evidence}: "{snippet}"'})

    def _trace(self, p: Prepared, an: Analysis, flags: list[Flag]) -> TraceRow:
        """Token strings and smoothed series (valence, arousal, distress, calm, top emotions)."""
        n = min(len(p.ids), self.cfg.trace_max_tokens)
        if p.offsets:
            tokens = [p.doc.text[a:b] for a, b in p.offsets[:n]]
        else:
            tokens = [self.lm.tokenizer.decode([i]) for i in p.ids[:n]]
        names: list[str] = []
        series: list[list[float]] = []
        for name, arr in (
            ("valence", an.valence),
            ("arousal", an.arousal),
            ("distress", an.distress),
            ("calm", an.calm),
            ("regulation", an.regulation),
        ):
            if arr is not None:
                names.append(name)
                series.append(np.round(arr[:n], 3).astype(np.float32).tolist())
        for i, col in an.top_series(self.cfg.trace_top):
            names.append(f"emotion:{self.names[i]}")
            series.append(np.round(col[:n], 3).astype(np.float32).tolist())
        return TraceRow(
            doc_id=p.doc.doc_id,
            n_tokens=len(p.ids),
            truncated=len(p.ids) > n,
            tokens=tokens,
            series_names=names,
            series=series,
            flags=flags,
        )

    def chunk_docs(
        self, docs: Iterable[Doc], *, start_index: int = 0
    ) -> list[tuple[int, list[Doc]]]:
        """Input-order chunks of about ``16 * batch_tokens`` characters: ``(first index, docs)``.

        A chunk is the unit :meth:`prepare` tokenises at once and :meth:`run_chunks` stitches, so
        memory is bounded by the chunk, not by the batch of documents.
        """
        chunks: list[tuple[int, list[Doc]]] = []
        budget = 16 * self.cfg.batch_tokens
        cur: list[Doc] = []
        size, first = 0, start_index
        for i, d in enumerate(docs):
            cur.append(d)
            size += len(d.text)
            if size >= budget:
                chunks.append((first, cur))
                cur, size, first = [], 0, start_index + i + 1
        if cur or not chunks:
            chunks.append((first, cur))
        return chunks

    def prepare_chunks(self, docs: Iterable[Doc], *, start_index: int = 0) -> list[list[Prepared]]:
        """:meth:`chunk_docs` then :meth:`prepare` each chunk (the CPU half, for a prefetcher)."""
        return [
            self.prepare(c, start_index=s0)
            for s0, c in self.chunk_docs(docs, start_index=start_index)
        ]

    def score_prepared(self, chunks: Iterable[Sequence[Prepared]]) -> list[ScoredDoc]:
        """Rows and traces of already prepared chunks (the model half of :meth:`score_full`)."""
        out: list[ScoredDoc] = []
        for part in self.run_chunks(chunks):
            out.extend(part)
        return self._cap_traces(out)

    def score_full(self, docs: Iterable[DocLike], *, start_index: int = 0) -> list[ScoredDoc]:
        """Rows and traces for a batch of documents.

        ``docs`` are Docs or ``(doc_id, text)`` pairs (made Docs here: the one place in the
        scorer that takes pairs). Documents are processed in input-order chunks of about
        ``16 * batch_tokens`` characters (bounded memory); with ``overlap`` the next chunk is
        tokenised on a worker thread while the model runs on the current one.
        """
        chunks = self.chunk_docs(as_docs(docs), start_index=start_index)
        if not self._overlap() or len(chunks) == 1:
            return self.score_prepared(self.prepare(c, start_index=s0) for s0, c in chunks)
        with ThreadPoolExecutor(max_workers=1) as ex:

            def ahead() -> Iterator[list[Prepared]]:
                fut = ex.submit(self.prepare, chunks[0][1], start_index=chunks[0][0])
                for k in range(len(chunks)):
                    prepared = fut.result()
                    if k + 1 < len(chunks):
                        fut = ex.submit(
                            self.prepare, chunks[k + 1][1], start_index=chunks[k + 1][0]
                        )
                    yield prepared

            return self.score_prepared(ahead())

    def _overlap(self) -> bool:
        return self.cfg.overlap if self.cfg.overlap is not None else self.lm.device.type != "cpu"

    def score(self, docs: Iterable[DocLike]) -> list[CorpusScore]:
        """One row per document (a Doc or a ``(doc_id, text)`` pair), in input order (pure: no files)."""
        return [s.row for s in self.score_full(docs)]


def deepest_layer(vs: VectorSet, reg: VectorSet | None, cfg: ScoreConfig) -> int:
    """The deepest block scoring reads (probe layer of the emotion and regulation sets).

    Scoring loads the model only up to this block (``load_model(upto_layer=...)``).
    """
    layer = vs.layer_or_default(cfg.layer)
    if reg is not None:
        layer = max(layer, reg.layer_or_default(None))
    return layer


def load_scoring_model(vs: VectorSet, reg: VectorSet | None, cfg: ScoreConfig) -> LoadedModel:
    """The model truncated after the deepest probe layer (no upper blocks, no LM head)."""
    from emocurate.vectors.models import load_model

    return load_model(
        cfg.model or vs.meta.model_id,
        device=cfg.device,
        dtype=cfg.dtype,
        upto_layer=deepest_layer(vs, reg, cfg),
    )


def load_vectors(vectors_dir: str | Path, cfg: ScoreConfig) -> tuple[VectorSet, VectorSet | None]:
    """The emotion VectorSet and, when configured or present as ``regulation/``, a regulation set."""
    vs = VectorSet.load(vectors_dir)
    reg: VectorSet | None = None
    reg_dir = (
        Path(cfg.regulation_vectors) if cfg.regulation_vectors else Path(vectors_dir) / "regulation"
    )
    if cfg.regulation_vectors and not reg_dir.exists():
        raise InputError(f"regulation vectors folder not found: {reg_dir}")
    if reg_dir.is_dir() and (reg_dir / "vectorset.json").exists():
        reg = VectorSet.load(reg_dir)
    return vs, reg


def with_calibration(vectors_dir: str | Path, cfg: ScoreConfig) -> ScoreConfig:
    """``cfg`` with the vector folder's calibration (unless z-unit thresholds are asked for).

    Without ``calibration.json`` the corpus is still scored, with flags off
    (``ScoreConfig.flags_off``; :func:`flags_note` says why and how to turn them on): a fixed
    z-unit threshold promises no rate, so it is used only when asked for. A calibration of other
    vectors or another smoothing window is refused.
    """
    if cfg.z_thresholds:
        return cfg.model_copy(update={"calibration": None, "flags_off": False})
    if cfg.calibration is None and not (Path(vectors_dir) / CALIBRATION_FILE).exists():
        return cfg.model_copy(update={"flags_off": True})
    cal = cfg.calibration or load_calibration(vectors_dir)
    vs = VectorSet.load(vectors_dir)
    cal.check_compatible(
        vs, vs.layer_or_default(cfg.layer), cfg.smooth, Path(vectors_dir) / "calibration.json"
    )
    return cfg.model_copy(update={"calibration": cal, "flags_off": False})


def flags_note(vectors_dir: str | Path, cfg: ScoreConfig) -> str:
    """One sentence for the manifest, the CLI summary and the report when flags are off."""
    if not cfg.flags_off:
        return ""
    return (
        f"flags off: {Path(vectors_dir) / CALIBRATION_FILE} not found, so no flag was raised "
        "(metric columns use the fixed z-unit thresholds); run `emocurate calibrate "
        f"{vectors_dir}` (neutral reference text) for flags at a known false-positive rate, or "
        "pass --z-threshold for fixed z-unit flags"
    )
