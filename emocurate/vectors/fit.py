"""Fit emotion vectors from labelled records: the anchor recipe, two alternatives, a layer sweep.

Anchor recipe (``mean_diff``): mean residual activation of each story from token ``skip`` on,
averaged per emotion, minus the mean over emotions; then project out the top principal
components of neutral-dialogue activations (enough for ``neutral_variance`` of their variance).
Alternatives: ``pca`` (first principal direction of each emotion's differences from the other
emotions, sign- and scale-aligned with the mean difference) and ``logistic`` (a multinomial
logistic probe's weight rows).

Memory: ``mean_diff`` keeps running sums only (per-emotion sums and one second-moment matrix
per candidate layer for the z-score reference), so memory does not grow with the number of
records; ``pca`` and ``logistic`` must keep one pooled row per training record and layer.
Held-out records are scored batch by batch; only their ``[n, n_emotions]`` scores are kept.

Dialogue records give speaker-aware vectors: activations pooled over the human's turns fit
``speaker_human`` vectors (labelled with ``human_emotion``) and over the assistant's turns
``speaker_assistant`` vectors; they are saved in ``human/`` and ``assistant/`` subfolders.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from emocurate.errors import ConfigError, InputError
from emocurate.io import atomic_write_bytes, ensure_dir, read_records, read_table
from emocurate.records import Dialogue, Model, NeutralDialogue, Story, canonical_json, render_turns
from emocurate.vectors.capture import (
    Batch,
    context_length,
    encode,
    has_bos,
    iter_hidden,
    pool_mask,
    pool_start,
)
from emocurate.vectors.models import LoadedModel, default_layer, load_model, model_type
from emocurate.vectors.vectorset import SPEAKER_SUBDIRS, VectorSet, VectorSetMeta

EVALUATION_FILE = "evaluation.json"


class FitConfig(Model):
    """Options of ``emocurate fit`` (one per CLI flag)."""

    model: str = "stories260K"
    layers: str = "auto"  # auto | all | "N,M"
    method: Literal["mean_diff", "pca", "logistic"] = "mean_diff"
    skip: int = Field(50, ge=0)
    pooling: Literal["mean", "last"] = (
        "mean"  # mean from token skip (anchor), or the last token only
    )
    batch_tokens: int = Field(8192, ge=16)
    neutral_variance: float = Field(0.5, ge=0.0, le=1.0)
    holdout: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    device: str = "cpu"
    dtype: str = "auto"
    max_length: int | None = None
    logit_lens_k: int = 10
    max_auto_layers: int = Field(16, ge=2)  # layers swept by "auto" on deep models


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass
class View:
    """One labelled pooling of the texts: which tokens to pool and the label of each text."""

    kind: str  # emotion | speaker_human | speaker_assistant
    names: list[str]
    labels: list[int]  # index into names per text
    ranges: list[list[tuple[int, int]]] | None = (
        None  # token ranges per text; None: [pool_start, n)
    )


def read_fit_records(records_dir: str | Path) -> list[Story] | list[Dialogue]:
    """Story or Dialogue records of a stage folder (the ``kind`` column decides)."""
    table = read_table(records_dir)
    kinds = set(table.column("kind").to_pylist()) if "kind" in table.column_names else set()
    if kinds == {"dialogue"}:
        return read_records(records_dir, Dialogue)
    if kinds <= {"story"} and "emotion" in table.column_names:
        return read_records(records_dir, Story)
    raise InputError(
        f"{records_dir}: expected story or dialogue records to fit vectors, found kind(s) {sorted(map(str, kinds)) or 'none'}"
    )


def read_texts(records_dir: str | Path) -> list[str]:
    """Texts of any record folder (neutral dialogues, stories, dialogues)."""
    table = read_table(records_dir)
    kinds = set(table.column("kind").to_pylist()) if "kind" in table.column_names else set()
    if kinds == {"neutral"}:
        return [r.text for r in read_records(records_dir, NeutralDialogue)]
    if kinds == {"dialogue"}:
        return [r.text for r in read_records(records_dir, Dialogue)]
    if "text" in table.column_names:
        return [str(t) for t in table.column("text").to_pylist()]
    raise InputError(f"{records_dir}: no text or turns column to read neutral text from")


def emotion_order(labels: Sequence[str]) -> list[str]:
    """Distinct labels in taxonomy order when the taxonomy knows them, else alphabetical."""
    distinct = sorted(set(labels))
    try:
        from emocurate.taxonomy import load_taxonomy

        order = {n: i for i, n in enumerate(load_taxonomy().names())}
    except Exception:  # taxonomy absent or invalid: plain alphabetical order is fine
        order = {}
    return sorted(distinct, key=lambda n: (order.get(n, len(order)), n))


def records_hash(rows: Sequence[Any]) -> str:
    """sha256 (16 hex) of the training data: ids, texts and labels, order-independent."""
    parts = sorted(canonical_json(r) for r in rows)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


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


# ---------------------------------------------------------------------------------------------
# streaming accumulators


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


@dataclass
class ViewStats:
    """Per-label running sums at one layer (plus pooled rows when a method needs them)."""

    sums: torch.Tensor
    counts: torch.Tensor
    rows: list[torch.Tensor] = field(default_factory=list)
    row_labels: list[torch.Tensor] = field(default_factory=list)


def _masks(
    batch: Batch, view: View, skip: int, bos: bool, device: torch.device, last: bool = False
) -> torch.Tensor:
    if view.ranges is None:
        starts = (
            [max(n - 1, 0) for n in batch.lengths]
            if last
            else [pool_start(n, skip, bos) for n in batch.lengths]
        )
        return pool_mask(batch, starts, device)
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
    skip: int,
    batch_tokens: int,
    on_pooled: Any,
    moments: dict[int, Moments] | None = None,
    last: bool = False,
    desc: str = "",
) -> None:
    """One forward pass over ``ids``; calls ``on_pooled(view, indices, valid, {layer: [b, d]})``.

    ``moments`` (when given) accumulate every pooled token of the first view, for the z-score
    reference and the residual norm. ``last`` pools only the final token (story views). A rich
    progress bar (texts done) is shown when ``desc`` is set and stderr is a terminal.
    """
    bos = has_bos(lm.tokenizer, ids)
    with _progress(desc, len(ids)) as advance:
        for batch, acts in iter_hidden(lm, ids, layers, batch_tokens=batch_tokens):
            _pool_batch(batch, acts, views, layers, skip, bos, last, on_pooled, moments)
            advance(len(batch.indices))


@contextmanager
def _progress(desc: str, total: int) -> Iterator[Callable[[int], None]]:
    if not desc or not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(desc, total=total)
        yield lambda n: bar.advance(task, n)


def _pool_batch(
    batch: Batch,
    acts: dict[int, torch.Tensor],
    views: list[View],
    layers: list[int],
    skip: int,
    bos: bool,
    last: bool,
    on_pooled: Any,
    moments: dict[int, Moments] | None,
) -> None:
    device = next(iter(acts.values())).device
    for v_i, view in enumerate(views):
        mask = _masks(batch, view, skip, bos, device, last)
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


def neutral_moments(
    lm: LoadedModel,
    texts: Sequence[str],
    layers: list[int],
    *,
    batch_tokens: int,
    max_length: int | None = None,
) -> dict[int, Moments]:
    """Token moments on neutral text (every token but BOS) at ``layers``."""
    ids = encode(lm.tokenizer, texts, max_length or context_length(lm))
    view = View(kind="neutral", names=["neutral"], labels=[0] * len(ids))
    moments = {layer: Moments() for layer in layers}
    stream_pooled(
        lm,
        ids,
        [view],
        layers,
        skip=0,
        batch_tokens=batch_tokens,
        on_pooled=lambda *a: None,
        desc="fit: neutral records",
        moments=moments,
    )
    return moments


# ---------------------------------------------------------------------------------------------
# the fitting maths


def neutral_projection(cov: torch.Tensor, variance: float) -> tuple[torch.Tensor, int]:
    """Top principal components of neutral activations covering ``variance`` of their variance.

    Returns ``(U [d, k], k)``; projecting ``v - U Uᵀ v`` removes them.
    """
    evals, evecs = torch.linalg.eigh(cov.double())
    evals = evals.flip(0).clamp_min(0)
    evecs = evecs.flip(1)
    if variance <= 0 or float(evals.sum()) <= 0:
        return evecs[:, :0].float(), 0
    frac = evals.cumsum(0) / evals.sum()
    k = int((frac < variance).sum().item()) + 1
    k = min(k, cov.shape[0] - 1)
    return evecs[:, :k].float(), k


def mean_diff(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-emotion means minus the mean over emotions (anchor recipe)."""
    means = sums / counts.clamp_min(1).unsqueeze(1)
    return means - means.mean(0, keepdim=True)


def pca_diff(rows: torch.Tensor, labels: torch.Tensor, md: torch.Tensor) -> torch.Tensor:
    """Per emotion: first principal direction of its rows minus the other emotions' mean.

    Sign and norm follow the mean difference so the methods are interchangeable downstream.
    """
    n_e = md.shape[0]
    means = torch.stack([rows[labels == e].mean(0) for e in range(n_e)])
    out = torch.zeros_like(md)
    for e in range(n_e):
        others = torch.cat([means[:e], means[e + 1 :]]).mean(0)
        diffs = rows[labels == e] - others
        _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
        d = vh[0]
        if float(d @ md[e]) < 0:
            d = -d
        out[e] = d * md[e].norm()
    return out


def logistic_probe(rows: torch.Tensor, labels: torch.Tensor, n_e: int, seed: int) -> torch.Tensor:
    """Weight rows of a multinomial logistic probe on centred pooled activations."""
    from sklearn.linear_model import LogisticRegression

    x = (rows - rows.mean(0)).double().numpy()
    y = labels.numpy()
    clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    clf.fit(x, y)
    coef = torch.from_numpy(clf.coef_).float()
    if n_e == 2 and coef.shape[0] == 1:
        coef = torch.cat([-coef, coef])
    full = torch.zeros(n_e, rows.shape[1])
    for row, cls in enumerate(clf.classes_):
        full[int(cls)] = coef[row]
    return full


def reference_from_moments(
    unit: torch.Tensor, moments: Moments
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``h·u`` under the moments' distribution (exact, from running sums)."""
    u = unit.to(moments.mean().device)
    mean = u @ moments.mean()
    var = torch.einsum("ed,df,ef->e", u, moments.cov(), u)
    return mean.cpu(), var.clamp_min(1e-12).sqrt().clamp_min(1e-6).cpu()


# ---------------------------------------------------------------------------------------------
# orchestration


def resolve_layers(spec: str, n_layers: int, max_auto: int = 16) -> tuple[list[int], bool]:
    """Candidate layers and whether all of them are kept in the VectorSet.

    ``auto``: sweep on held-out records, keep the chosen one; every layer up to ``max_auto``
    layers, else ``max_auto`` evenly spaced layers that include the two-thirds default (each
    candidate costs a ``hidden x hidden`` moment matrix). ``all``: sweep and keep every layer.
    ``N,M``: those layers (negative counts from the end), keep all, pick among them.
    """
    spec = spec.strip().lower()
    if spec in ("auto", ""):
        if n_layers <= max_auto:
            return list(range(n_layers)), False
        picks = {round(i * (n_layers - 1) / (max_auto - 2)) for i in range(max_auto - 1)}
        picks.add(default_layer(n_layers))
        return sorted(picks), False
    if spec == "all":
        return list(range(n_layers)), True
    out: list[int] = []
    for part in spec.split(","):
        try:
            i = int(part)
        except ValueError:
            raise ConfigError(f"--layers: '{part}' is not auto, all or a layer number") from None
        j = i + n_layers if i < 0 else i
        if not 0 <= j < n_layers:
            raise ConfigError(f"--layers: layer {i} is out of range for a {n_layers}-layer model")
        if j not in out:
            out.append(j)
    return sorted(out), True


def split_holdout(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified split; each label keeps at least one training record."""
    rng = random.Random(seed)
    by: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        by.setdefault(lab, []).append(i)
    train: list[int] = []
    held: list[int] = []
    for lab in sorted(by):
        idx = by[lab][:]
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction)) if fraction > 0 else 0
        k = min(k, len(idx) - 1)
        held += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(held)


def selection_split(n: int, *, sweeping: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out rows that choose the layer, and the disjoint rows the evaluation reports on.

    Without a sweep (or with too few rows to halve) both are all rows: nothing was chosen.
    """
    every = torch.arange(n)
    if not sweeping or n < 10:
        return every, every
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2 :].sort().values


def choose_layer(
    sweep: dict[int, dict[str, float]], candidates: list[int], n_layers: int
) -> tuple[int, str]:
    """Best held-out accuracy (ties: mean AUROC, then closeness to two thirds of the depth)."""
    target = default_layer(n_layers)
    if len(candidates) == 1:
        return candidates[0], "fixed"
    if not sweep:
        best = min(candidates, key=lambda c: abs(c - target))
        return best, "default"
    best = max(
        candidates,
        key=lambda c: (
            round(sweep[c]["accuracy"], 6),
            round(sweep[c].get("auroc_mean", 0.0), 6),
            -abs(c - target),
        ),
    )
    return best, "sweep"


def _views_for(
    records: list[Story] | list[Dialogue], lm: LoadedModel, ids: list[list[int]]
) -> list[View]:
    if records and isinstance(records[0], Dialogue):
        dialogues: list[Dialogue] = [r for r in records if isinstance(r, Dialogue)]
        spans = [turn_token_ranges(lm.tokenizer, d, ids[i]) for i, d in enumerate(dialogues)]
        views = []
        for speaker, attr in (("human", "human_emotion"), ("assistant", "assistant_emotion")):
            labs = [str(getattr(d, attr)) for d in dialogues]
            names = emotion_order(labs)
            views.append(
                View(
                    kind=f"speaker_{speaker}",
                    names=names,
                    labels=[names.index(x) for x in labs],
                    ranges=[s[speaker] for s in spans],
                )
            )
        return views
    labs = [r.emotion for r in records if isinstance(r, Story)]
    names = emotion_order(labs)
    return [View(kind="emotion", names=names, labels=[names.index(x) for x in labs])]


def _subset(view: View, idx: list[int]) -> View:
    return View(
        kind=view.kind,
        names=view.names,
        labels=[view.labels[i] for i in idx],
        ranges=None if view.ranges is None else [view.ranges[i] for i in idx],
    )


def fit_vectors(
    records_dir: str | Path,
    cfg: FitConfig,
    out_dir: str | Path,
    *,
    neutral_dir: str | Path | None = None,
    lm: LoadedModel | None = None,
) -> VectorSet:
    """Fit, choose the layer, evaluate on held-out records and save into ``out_dir``.

    Story records give one ``emotion`` VectorSet saved in ``out_dir``; Dialogue records give
    ``speaker_human`` and ``speaker_assistant`` sets in ``out_dir/human`` and
    ``out_dir/assistant`` (the assistant set is returned). The z-score reference comes from the
    neutral records when ``neutral_dir`` is given (``meta.reference_source == "neutral"``), else
    from every pooled token of the training records (``"train_tokens"``; no neutral-PC
    projection then). Each folder also gets ``evaluation.json``.
    """
    records = read_fit_records(records_dir)
    if len(records) < 2:
        raise InputError(
            f"{records_dir}: need at least 2 records to fit vectors, found {len(records)}"
        )
    if lm is None:
        lm = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    candidates, keep_all = resolve_layers(cfg.layers, lm.n_layers, cfg.max_auto_layers)
    max_length = cfg.max_length or context_length(lm)
    texts = [r.text for r in records]
    ids = encode(lm.tokenizer, texts, max_length)
    views = _views_for(records, lm, ids)
    for view in views:
        if len(view.names) < 2:
            raise InputError(
                f"{records_dir}: need at least 2 distinct emotions for {view.kind} vectors, "
                f"found {view.names}"
            )

    # split on the first view's labels (stories: the emotion; dialogues: the human emotion)
    train_idx, held_idx = split_holdout(views[0].labels, cfg.holdout, cfg.seed)
    need_rows = cfg.method != "mean_diff"

    # pass 1: training records -> per-label running sums (+ token moments for the fallback reference)
    stats = {
        v.kind: {
            layer: ViewStats(
                sums=torch.zeros(len(v.names), lm.hidden_size, device=lm.device),
                counts=torch.zeros(len(v.names), device=lm.device),
            )
            for layer in candidates
        }
        for v in views
    }
    train_views = [_subset(v, train_idx) for v in views]
    train_moments = {layer: Moments() for layer in candidates}

    def add_train(
        view: View, indices: list[int], valid: torch.Tensor, pooled: dict[int, torch.Tensor]
    ) -> None:
        labels = torch.tensor([view.labels[i] for i in indices], device=valid.device)[valid]
        for layer, p in pooled.items():
            st = stats[view.kind][layer]
            st.sums.index_add_(0, labels, p[valid])
            st.counts.index_add_(0, labels, torch.ones_like(labels, dtype=st.counts.dtype))
            if need_rows:
                st.rows.append(p[valid].cpu())
                st.row_labels.append(labels.cpu())

    last = cfg.pooling == "last"
    stream_pooled(
        lm,
        [ids[i] for i in train_idx],
        train_views,
        candidates,
        skip=cfg.skip,
        batch_tokens=cfg.batch_tokens,
        on_pooled=add_train,
        desc="fit: training records",
        moments=train_moments,
        last=last,
    )

    ref_moments = train_moments
    reference_source = "train_tokens"
    n_neutral = 0
    if neutral_dir is not None:
        neutral_texts = read_texts(neutral_dir)
        n_neutral = len(neutral_texts)
        if neutral_texts:
            ref_moments = neutral_moments(
                lm, neutral_texts, candidates, batch_tokens=cfg.batch_tokens, max_length=max_length
            )
            reference_source = "neutral"

    # vectors per view and layer
    fitted: dict[str, VectorSet] = {}
    data_hash = records_hash(
        [
            {
                "id": getattr(r, "id", ""),
                "text": texts[i],
                "labels": [v.names[v.labels[i]] for v in views],
            }
            for i, r in enumerate(records)
        ]
    )
    for view in views:
        vecs: dict[int, torch.Tensor] = {}
        pcs: dict[str, int] = {}
        ref_mean: dict[int, torch.Tensor] = {}
        ref_std: dict[int, torch.Tensor] = {}
        for layer in candidates:
            st = stats[view.kind][layer]
            missing = [view.names[e] for e in range(len(view.names)) if st.counts[e] == 0]
            if missing:
                raise InputError(
                    f"{records_dir}: no training tokens for {view.kind} emotion(s) {missing}"
                )
            md = mean_diff(st.sums, st.counts).cpu()
            if cfg.method == "mean_diff":
                v = md
            else:
                rows = torch.cat(st.rows)
                labels = torch.cat(st.row_labels)
                v = (
                    pca_diff(rows, labels, md)
                    if cfg.method == "pca"
                    else logistic_probe(rows, labels, len(view.names), cfg.seed)
                )
            if reference_source == "neutral" and cfg.neutral_variance > 0:
                u_pcs, k = neutral_projection(ref_moments[layer].cov().cpu(), cfg.neutral_variance)
                v = v - (v @ u_pcs) @ u_pcs.T
                pcs[str(layer)] = k
            vecs[layer] = v.float()
            unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            ref_mean[layer], ref_std[layer] = reference_from_moments(unit, ref_moments[layer])
        counts = stats[view.kind][candidates[0]].counts
        meta = VectorSetMeta(
            names=view.names,
            layers=candidates,
            default_layer=candidates[0],
            model_id=lm.model_id,
            model_revision=lm.revision,
            model_type=model_type(lm.model),
            hidden_size=lm.hidden_size,
            n_model_layers=lm.n_layers,
            kind=view.kind,
            hook_site=f"{lm.layer_path}[i] output (residual stream)",
            pooling=(
                "mean over each speaker's turn tokens"
                if view.ranges is not None
                else "last token"
                if last
                else "mean from token skip (clipped to n//2) to end"
            ),
            skip=cfg.skip if view.ranges is None else 0,
            method=cfg.method,
            train_data_hash=data_hash,
            n_train_records=len(train_idx),
            neutral_pcs=pcs,
            neutral_variance=cfg.neutral_variance if reference_source == "neutral" else 0.0,
            has_reference=True,
            reference_source=reference_source,
            residual_norm={str(layer): train_moments[layer].mean_norm for layer in candidates},
            holdout=cfg.holdout,
            seed=cfg.seed,
            emotion_counts={n: int(c) for n, c in zip(view.names, counts.tolist(), strict=True)},
        )
        fitted[view.kind] = VectorSet(vectors=vecs, meta=meta, ref_mean=ref_mean, ref_std=ref_std)

    # pass 2: held-out records -> z-scored projections per layer (only [n, E] scores are kept)
    scores: dict[str, dict[int, list[torch.Tensor]]] = {
        v.kind: {layer: [] for layer in candidates} for v in views
    }
    gold: dict[str, list[torch.Tensor]] = {v.kind: [] for v in views}
    if held_idx:
        held_views = [_subset(v, held_idx) for v in views]

        def add_held(
            view: View, indices: list[int], valid: torch.Tensor, pooled: dict[int, torch.Tensor]
        ) -> None:
            vs = fitted[view.kind]
            gold[view.kind].append(torch.tensor([view.labels[i] for i in indices])[valid.cpu()])
            for layer, p in pooled.items():
                scores[view.kind][layer].append(vs.project(p[valid], layer).cpu())

        stream_pooled(
            lm,
            [ids[i] for i in held_idx],
            held_views,
            candidates,
            skip=cfg.skip,
            batch_tokens=cfg.batch_tokens,
            on_pooled=add_held,
            desc="fit: held-out records",
            last=last,
        )

    from emocurate.vectors.evaluate import classification_metrics, full_report

    out_root = ensure_dir(out_dir)
    result: VectorSet | None = None
    for view in views:
        vs = fitted[view.kind]
        sweep: dict[int, dict[str, float]] = {}
        y_all = torch.cat(gold[view.kind]) if gold[view.kind] else torch.zeros(0, dtype=torch.long)
        layer_scores = {
            layer: torch.cat(scores[view.kind][layer]) for layer in candidates if len(y_all)
        }
        # Choosing the layer on the records it is then scored on would flatter the reported
        # accuracy: with a sweep, one half of the held-out rows chooses, the other half reports.
        sel, rep = selection_split(len(y_all), sweeping=len(candidates) > 1, seed=cfg.seed)
        y = y_all[rep]
        if len(y) > 0:
            for layer in candidates:
                m = classification_metrics(layer_scores[layer][sel], y_all[sel], view.names)
                sweep[layer] = {
                    "accuracy": m["accuracy"],
                    "top3": m["top3"],
                    "auroc_mean": m["auroc_mean"],
                }
        chosen, how = choose_layer(sweep, candidates, lm.n_layers)
        keep = candidates if keep_all else [chosen]
        vs.vectors = {layer: vs.vectors[layer] for layer in keep}
        vs.ref_mean = {layer: vs.ref_mean[layer] for layer in keep}
        vs.ref_std = {layer: vs.ref_std[layer] for layer in keep}
        vs.meta.layers = keep
        vs.meta.default_layer = chosen
        vs.meta.layer_selection = how
        vs.meta.residual_norm = {k: v for k, v in vs.meta.residual_norm.items() if int(k) in keep}
        vs.meta.neutral_pcs = {k: v for k, v in vs.meta.neutral_pcs.items() if int(k) in keep}
        vs.meta.sweep = {str(k): v for k, v in sweep.items()}
        report = full_report(
            vs,
            lm,
            layer_scores[chosen][rep] if len(y) else None,
            y if len(y) else None,
            layer=chosen,
            k=cfg.logit_lens_k,
        )
        report["sweep"] = vs.meta.sweep
        report["chosen_layer"] = chosen
        report["layer_selection"] = how
        report["n_train"] = len(train_idx)
        report["n_heldout"] = int(len(y))
        report["n_layer_selection"] = int(len(sel)) if len(y) else 0
        report["selection_disjoint"] = bool(
            len(y) and len(sel) + len(rep) == len(y_all) and len(sel) < len(y_all)
        )
        report["reference_source"] = reference_source
        report["n_neutral_texts"] = n_neutral
        vs.meta.evaluation = {
            k: report[k] for k in ("accuracy", "top3", "chance", "auroc_mean", "n") if k in report
        }
        target = out_root if len(views) == 1 else out_root / SPEAKER_SUBDIRS[view.kind]
        vs.save(target)
        atomic_write_bytes(
            target / EVALUATION_FILE, (json.dumps(report, indent=2, default=float) + "\n").encode()
        )
        result = vs
    assert result is not None
    return result
