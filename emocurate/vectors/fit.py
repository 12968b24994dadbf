"""Fit emotion vectors from labelled records: the study's recipe, two alternatives, a layer sweep.

Recipe (``mean_diff``, the defaults): the mean residual activation of each story from token
``skip`` (50) on, exactly, and never before the first token of the part the model generated
(a story's ``prompt_prefix`` may name the emotion, and the leakage validator checks only the
generated part: what is pooled is what it checked). Records with no token in that window are
left out of fitting and counted (``n_skipped_short``); ``short="clip"`` is the opt-in, named
rule that pools them from half their length instead. Per-emotion means minus their mean over
emotions; then the top principal components of neutral-dialogue activations (enough for
``neutral_variance`` = 50% of their variance) are projected out whenever neutral text is
given. The default layer is the one nearest two thirds of the depth (``models.default_layer``);
a sweep reports every candidate layer and moves away from the default only when the gain is
significant on held-out rows (one-sided exact McNemar test, Bonferroni over the alternative
layers, alpha :data:`SELECTION_ALPHA`) and never on fewer than :data:`MIN_SELECTION_ROWS` rows.
Alternatives: ``pca`` (first principal direction of each emotion's differences from the other
emotions, sign- and scale-aligned with the mean difference) and ``logistic`` (a multinomial
logistic probe's weight rows). Each method is a named aggregator in :data:`AGGREGATORS`
(``Pooled -> [E, d]`` raw differences; :func:`register_aggregator` adds one, which
``FitConfig.method`` then accepts); the recipe's post-processing (standardisation, neutral-PC
projection, z-score reference) is the same for every method.

Evaluation: ``eval_seeds`` stratified splits (seeds ``seed``, ``seed + 1``, ...); for each, the
vectors are fitted on the training rows (same neutral-PC projection) and score the held-out
rows, beside the majority class and a lexical baseline on the same splits and the same pooled
text (see :mod:`emocurate.vectors.evaluate`). The z-score reference used while scoring is the
saved set's (neutral text, or the pooled tokens of all fitted records: label-free statistics).
The saved vectors are then fitted on every usable record. The layer test uses the first
seed's held-out rows; when the layer moves, those rows also enter the reported evaluation.

Memory: ``mean_diff`` keeps running sums only (per-emotion sums over all records and over each
seed's training rows, and one second-moment matrix per candidate layer for the z-score
reference), so memory does not grow with the number of records: one forward pass fills the
sums, a second scores each record in the seeds that hold it out (only ``[n, n_emotions]``
scores are kept). ``pca`` and ``logistic`` must keep one pooled row per record and layer.

Dialogue records give speaker-aware vectors: activations pooled over the human's turns fit
``speaker_human`` vectors (labelled with ``human_emotion``) and over the assistant's turns
``speaker_assistant`` vectors; they are saved in ``human/`` and ``assistant/`` subfolders.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emocurate.artifacts import (
    EVALUATION_FILE,
    SPEAKER_SUBDIRS,
    ClassificationMetrics,
    Evaluation,
    FitDataSource,
    GeometryReport,
    LayerMetrics,
    LayerSelection,
    VectorSetMeta,
)
from emocurate.configs import FitConfig, expected_fit_methods
from emocurate.errors import ConfigError, InputError, UnknownEmotionError
from emocurate.io import atomic_write_bytes, ensure_dir, read_records, read_table
from emocurate.records import Dialogue, NeutralDialogue, Story, canonical_json
from emocurate.vectors.capture import (
    context_length,
    has_bos,
    pool_start,
)
from emocurate.vectors.evaluate import (
    classification_metrics,
    compare,
    geometry,
    lexical_baseline,
    logit_lens,
    majority_baseline,
    mcnemar_one_sided,
    spread,
)
from emocurate.vectors.models import LoadedModel, default_layer, load_model, model_type
from emocurate.vectors.pooling import (  # re-exported: the fit's pooling lives there
    Moments,
    View,
    _span_text,
    encode_with_offsets,
    pool_windows,
    stream_pooled,
    text_hash,
    turn_token_ranges,
)
from emocurate.vectors.vectorset import VectorSet

TRAIN_IDS_FILE = "train_ids.json"
MIN_SELECTION_ROWS = 30
"""A sweep never moves away from the default layer on fewer held-out rows than this."""
SELECTION_ALPHA = 0.05
"""Family-wise significance level of the layer-selection test (Bonferroni over alternatives)."""
SELECTION_TEST = (
    "one-sided exact McNemar test (sign test on the held-out rows where the two layers "
    "disagree) of the most accurate alternative against the default, Bonferroni over the "
    "alternative layers"
)


def load_labelled(cfg: FitConfig) -> tuple[list[Story], FitDataSource]:
    """The records of ``cfg.records`` with their source; left-out rows are warned on stderr."""
    from emocurate.vectors.labelled import parse_label_map, read_labelled

    assert cfg.records is not None
    lm = cfg.label_map
    mapping = lm if isinstance(lm, dict) else parse_label_map(lm)
    got = read_labelled(
        cfg.records,
        text_field=cfg.text_field,
        label_field=cfg.label_field,
        id_field=cfg.id_field,
        label_map=mapping,
        licence=cfg.data_licence,
    )
    for line in got.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return got.records, got.source


# ---------------------------------------------------------------------------------------------
# inputs


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


BUNDLED_NEUTRAL = "bundled:neutral"
"""100 self-written, emotionally flat sentences shipped with the package (Apache-2.0;
``emocurate/data/neutral/``): the neutral reference when the user has none."""


def bundled_neutral_path() -> Path:
    """The bundled neutral sentences (JSON lines, ``text``)."""
    from importlib import resources

    return Path(str(resources.files("emocurate").joinpath("data/neutral/neutral_en.jsonl")))


def read_texts(records_dir: str | Path) -> list[str]:
    """Texts of any record folder (neutral dialogues, stories, dialogues), of a JSONL file
    (its ``text`` field) or a ``.txt`` file (one text per non-empty line), or
    ``bundled:neutral``."""
    if str(records_dir) == BUNDLED_NEUTRAL:
        records_dir = bundled_neutral_path()
    path = Path(records_dir)
    if path.is_file():
        lines = [x for x in path.read_text("utf-8").splitlines() if x.strip()]
        if path.suffix.lower() in (".txt", ".text"):
            return lines
        out: list[str] = []
        for i, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except ValueError:
                raise InputError(f"{path}: line {i}: invalid JSON") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InputError(f"{path}: line {i}: no string field 'text'")
            out.append(row["text"])
        return out
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


# ---------------------------------------------------------------------------------------------
# streaming accumulators


@dataclass
class ViewStats:
    """Per-label running sums at one layer: all records, and each seed's training rows.

    ``rows`` (with their record indices and labels) are kept only for methods that need them.
    """

    sums: torch.Tensor  # [E, d] over every usable record
    counts: torch.Tensor  # [E]
    seed_sums: torch.Tensor  # [S, E, d] over each split's training rows
    seed_counts: torch.Tensor  # [S, E]
    rows: list[torch.Tensor] = field(default_factory=list)
    row_index: list[torch.Tensor] = field(default_factory=list)


def neutral_moments(
    lm: LoadedModel,
    texts: Sequence[str],
    layers: list[int],
    *,
    batch_tokens: int,
    max_length: int | None = None,
) -> dict[int, Moments]:
    """Token moments on neutral text (every token but BOS) at ``layers``."""
    ids, _ = encode_with_offsets(lm.tokenizer, texts, max_length or context_length(lm))
    bos = has_bos(lm.tokenizer, ids)
    view = View(
        kind="neutral",
        names=["neutral"],
        labels=[0] * len(ids),
        starts=[pool_start(len(i), 0, bos) for i in ids],
    )
    moments = {layer: Moments() for layer in layers}
    stream_pooled(
        lm,
        ids,
        [view],
        layers,
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


def dim_scale(var: torch.Tensor) -> torch.Tensor:
    """Per-dimension standard deviation from variances ``[d]`` (floored, never 0).

    ``fit`` passes the variance of the pooled texts (one row per fitted text, labels unused):
    the spread at the level the vectors classify, which also catches a dimension that is
    nearly constant within a text but swings between texts (token-level spread would not).
    """
    sd = var.double().clamp_min(0).sqrt()
    floor = float(sd[sd > 0].median()) * 1e-3 if bool((sd > 0).any()) else 1.0
    return sd.clamp_min(max(floor, 1e-12)).float()


def recipe_direction(
    v: torch.Tensor, scale: torch.Tensor | None, pcs: torch.Tensor | None
) -> torch.Tensor:
    """The saved reading direction from raw-space differences ``v [E, d]``.

    With ``scale`` (per-dimension sd of the pooled fitted texts, ``standardize="dims"``) the differences
    are taken in standardised coordinates ``x / scale``; ``pcs`` (neutral principal components,
    of the standardised reference when scaled) are projected out there; the result is mapped
    back to a raw-space direction ``v' / scale``, so that ``h · v_saved = (h / scale) · v'``:
    every reader (projection, z-scores, corpus scores, steering) keeps using plain dot products
    with raw activations. Without ``scale`` this is the anchor recipe (``v`` minus its neutral
    PCs). Why: a few massive-activation dimensions (SmolLM2-135M dim 507, ~250x the median
    spread at layers 11-26) otherwise dominate both the differences and the projections.
    """
    w = v.float() if scale is None else v.float() / scale
    if pcs is not None and pcs.shape[1]:
        w = w - (w @ pcs) @ pcs.T
    return (w if scale is None else w / scale).float()


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
# aggregators: the named fitting methods (``FitConfig.method``, ``fit --method``)


@dataclass(frozen=True)
class Pooled:
    """What an aggregator reads for one view, layer and training set (all records, or one
    split's training rows).

    ``rows``/``labels`` (pooled activations ``[n, d]`` on the CPU and their label indices) are
    ``None`` for an aggregator registered with ``sums_only=True``: it sees running sums only,
    so fitting memory does not grow with the number of records.
    """

    sums: torch.Tensor  # [E, d] per-label sums of the pooled rows
    counts: torch.Tensor  # [E] rows per label
    n_labels: int  # E
    seed: int  # the fit's seed (for aggregators that draw)
    rows: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def require_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled rows and labels (an aggregator that reads them is not ``sums_only``)."""
        if self.rows is None or self.labels is None:
            raise ValueError("this aggregator reads pooled rows: register it without sums_only")
        return self.rows, self.labels


Aggregator = Callable[[Pooled], torch.Tensor]
"""A fitting method: pooled activations -> raw per-label differences ``[E, d]`` (each row a
direction for one label). The recipe (``standardize``, neutral-PC projection) and the z-score
reference are applied afterwards, the same for every method."""

AGGREGATORS: dict[str, Aggregator] = {}
"""The fitting methods by name: what ``FitConfig.method`` (``fit --method``, the pipeline's
``fit: method``) accepts. :func:`register_aggregator` adds one."""

SUMS_ONLY: set[str] = set()
"""Names in :data:`AGGREGATORS` that read only ``Pooled.sums``/``counts`` (no rows kept)."""


def register_aggregator(
    name: str, *, sums_only: bool = False
) -> Callable[[Aggregator], Aggregator]:
    """Decorator: register ``fn`` as the fitting method ``name`` (replacing one of that name).

    ``sums_only`` promises the method reads only sums and counts, so ``fit`` keeps no pooled
    rows for it; without it every pooled row is kept (memory grows with the records).
    """

    def register(fn: Aggregator) -> Aggregator:
        AGGREGATORS[name] = fn
        if sums_only:
            SUMS_ONLY.add(name)
        else:
            SUMS_ONLY.discard(name)
        return fn

    return register


def get_aggregator(name: str) -> tuple[Aggregator, bool]:
    """The registered method ``name`` and whether it is ``sums_only``."""
    if name not in AGGREGATORS:
        raise ConfigError(f"--method: Input should be {expected_fit_methods()}")
    return AGGREGATORS[name], name in SUMS_ONLY


@register_aggregator("mean_diff", sums_only=True)
def aggregate_mean_diff(pooled: Pooled) -> torch.Tensor:
    """The study's recipe: per-label means minus their mean over labels (:func:`mean_diff`)."""
    return mean_diff(pooled.sums, pooled.counts).cpu()


@register_aggregator("pca")
def aggregate_pca(pooled: Pooled) -> torch.Tensor:
    """First principal direction of each label's rows against the others (:func:`pca_diff`),
    sign- and scale-aligned with the mean difference."""
    rows, labels = pooled.require_rows()
    return pca_diff(rows, labels, mean_diff(pooled.sums, pooled.counts).cpu())


@register_aggregator("logistic")
def aggregate_logistic(pooled: Pooled) -> torch.Tensor:
    """A multinomial logistic probe's weight rows (:func:`logistic_probe`, seeded)."""
    rows, labels = pooled.require_rows()
    return logistic_probe(rows, labels, pooled.n_labels, pooled.seed)


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


MIN_RECORDS_PER_EMOTION = 5
"""With ``holdout > 0`` every emotion needs this many usable records (and enough that the
holdout fraction holds at least one out): fewer would leave an emotion unevaluated, or evaluate
it on nothing, while the run still reported an accuracy."""


def min_records_for_holdout(fraction: float) -> int:
    """The fewest usable records per emotion for ``fraction``: at least
    :data:`MIN_RECORDS_PER_EMOTION`, one held out (``round(n * fraction) >= 1``), one left to fit."""
    n = MIN_RECORDS_PER_EMOTION
    while int(round(n * fraction)) < 1 or n - int(round(n * fraction)) < 1:
        n += 1
    return n


def check_holdout_counts(view: View, fraction: float, where: str) -> None:
    """One line naming the emotions with too few records for a held-out evaluation."""
    if fraction <= 0:
        return
    need = min_records_for_holdout(fraction)
    counts = [view.labels.count(i) for i in range(len(view.names))]
    short = [f"{name} {c}" for name, c in zip(view.names, counts, strict=True) if c < need]
    if short:
        raise InputError(
            f"{where}: held-out evaluation (--holdout {fraction:g}) needs at least {need} usable "
            f"records per emotion; too few: {', '.join(short)}. Add records, or pass --holdout 0 "
            "to fit without any evaluation"
        )


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


def default_candidate(candidates: Sequence[int], n_layers: int) -> int:
    """The candidate nearest two thirds of the depth (``models.default_layer``; ties: lower)."""
    target = default_layer(n_layers)
    return min(candidates, key=lambda c: (abs(c - target), c))


def choose_layer(
    per_row: dict[int, torch.Tensor],
    candidates: list[int],
    n_layers: int,
    *,
    seed: int | None = None,
    min_rows: int = MIN_SELECTION_ROWS,
    alpha: float = SELECTION_ALPHA,
) -> LayerSelection:
    """The default layer unless an alternative is significantly more accurate (see module doc).

    Args:
        per_row: per candidate layer, a bool tensor of held-out correctness on the same rows.
        candidates: the swept layers.
        n_layers: the model's depth (the default is the candidate nearest two thirds of it).
        seed: the split seed the rows come from (only named in the rule text).
    """
    target = default_layer(n_layers)
    default = default_candidate(candidates, n_layers)
    where = (
        f"layer {default}, nearest two thirds of the {n_layers}-layer depth"
        if default == target
        else f"layer {default}, the candidate nearest two thirds of the depth (layer {target})"
    )
    if len(candidates) == 1:
        return LayerSelection(
            rule=f"fixed: layer {default} given by --layers",
            default_layer=default,
            layer=default,
            candidates=list(candidates),
        )
    base: dict[str, Any] = {
        "default_layer": default,
        "candidates": list(candidates),
        "test": SELECTION_TEST,
        "min_rows": min_rows,
    }
    if default not in per_row or len(per_row[default]) == 0:
        return LayerSelection(
            rule=f"default {where}; no held-out rows, so the {len(candidates) - 1} other "
            "layers were not tested",
            layer=default,
            **base,
        )
    ref = per_row[default].bool()
    n = len(ref)
    if n < min_rows:
        return LayerSelection(
            rule=f"default {where}; every layer's held-out metrics are reported, but {n} "
            f"held-out rows are below the minimum of {min_rows} needed to move away from it",
            layer=default,
            n_rows=n,
            **base,
        )
    return _test_alternative(per_row, candidates, default, where, seed, alpha, base)


def _test_alternative(
    per_row: dict[int, torch.Tensor],
    candidates: list[int],
    default: int,
    where: str,
    seed: int | None,
    alpha: float,
    base: dict[str, Any],
) -> LayerSelection:
    """Move from ``default`` to the most accurate other layer only when a one-sided exact
    McNemar test on the same held-out rows rejects at ``alpha`` (Bonferroni over the others)."""
    ref = per_row[default].bool()
    n = len(ref)
    alts = [c for c in candidates if c != default]
    best = max(alts, key=lambda c: (int(per_row[c].sum()), -abs(c - default), -c))
    alt = per_row[best].bool()
    b, c = int((alt & ~ref).sum()), int((ref & ~alt).sum())
    p = mcnemar_one_sided(b, c)
    level = alpha / len(alts)
    moved = p < level
    rows = f"{n} held-out rows" + (f" of split seed {seed}" if seed is not None else "")
    rule = (
        f"default {where}; most accurate alternative layer {best} "
        f"({float(alt.float().mean()):.3f} vs {float(ref.float().mean()):.3f} on {rows}); "
        f"one-sided exact McNemar b={b}, c={c}, p={p:.3g} against alpha {alpha}/{len(alts)}"
        f" = {level:.3g} (Bonferroni): "
        + (f"moved to layer {best}" if moved else "kept the default")
    )
    return LayerSelection(
        rule=rule,
        layer=best if moved else default,
        moved=moved,
        best_alternative=best,
        n_rows=n,
        b=b,
        c=c,
        p_value=p,
        alpha=level,
        **base,
    )


def _story_views(
    records: list[Story],
    tokenizer: Any,
    ids: list[list[int]],
    offsets: list[list[tuple[int, int]]] | None,
    cfg: FitConfig,
) -> list[View]:
    win = pool_windows(
        tokenizer,
        records,
        ids,
        offsets,
        skip=cfg.resolved_skip(),
        short=cfg.short,
        last=cfg.pooling == "last",
    )
    labs = [r.emotion for r in records]
    names = emotion_order(labs)
    return [
        View(
            kind="emotion",
            names=names,
            labels=[names.index(x) for x in labs],
            starts=win.starts,
            texts=win.texts,
        )
    ]


def _dialogue_views(
    dialogues: list[Dialogue],
    tokenizer: Any,
    ids: list[list[int]],
    offsets: list[list[tuple[int, int]]] | None,
) -> list[View]:
    spans = [turn_token_ranges(tokenizer, d, ids[i]) for i, d in enumerate(dialogues)]
    views = []
    for speaker, attr in (("human", "human_emotion"), ("assistant", "assistant_emotion")):
        labs = [str(getattr(d, attr)) for d in dialogues]
        names = emotion_order(labs)
        ranges = [s[speaker] for s in spans]
        texts = [
            " ".join(
                _span_text(
                    tokenizer,
                    d.text,
                    ids[i],
                    offsets[i] if offsets else None,
                    a,
                    min(b, len(ids[i])),
                )
                for a, b in ranges[i]
            )
            for i, d in enumerate(dialogues)
        ]
        views.append(
            View(
                kind=f"speaker_{speaker}",
                names=names,
                labels=[names.index(x) for x in labs],
                ranges=ranges,
                texts=texts,
            )
        )
    return views


def build_views(
    records: list[Story] | list[Dialogue],
    tokenizer: Any,
    ids: list[list[int]],
    offsets: list[list[tuple[int, int]]] | None,
    cfg: FitConfig,
) -> tuple[list[View], list[bool]]:
    """The labelled poolings of the records and whether each record has tokens to pool in all."""
    if records and isinstance(records[0], Dialogue):
        views = _dialogue_views(
            [r for r in records if isinstance(r, Dialogue)], tokenizer, ids, offsets
        )
    else:
        views = _story_views(
            [r for r in records if isinstance(r, Story)], tokenizer, ids, offsets, cfg
        )
    usable = [True] * len(ids)
    for view in views:
        for i in range(len(ids)):
            if view.starts is not None and view.starts[i] >= len(ids[i]):
                usable[i] = False
            if view.ranges is not None and not any(
                a < min(b, len(ids[i])) for a, b in view.ranges[i]
            ):
                usable[i] = False
    return views, usable


def _subset(view: View, idx: list[int], *, rename: bool = False) -> View:
    """The view restricted to texts ``idx``; ``rename`` recomputes the names from what is left."""
    labels = [view.labels[i] for i in idx]
    names = view.names
    if rename:
        names = emotion_order([view.names[x] for x in labels])
        labels = [names.index(view.names[x]) for x in labels]
    return View(
        kind=view.kind,
        names=names,
        labels=labels,
        starts=None if view.starts is None else [view.starts[i] for i in idx],
        ranges=None if view.ranges is None else [view.ranges[i] for i in idx],
        texts=[view.texts[i] for i in idx] if view.texts else [],
    )


def label_leaks(view: View) -> int:
    """How many pooled texts contain their own label or its word forms.

    Uses the leakage validator's terms and matcher (taxonomy forms and synonyms, whole words,
    hyphen/space variants); a label the taxonomy lacks is searched as itself.
    """
    from emocurate.validators.leakage import LeakageValidator, find_leaks

    validator = LeakageValidator()
    terms: dict[str, tuple[str, ...]] = {}
    for name in view.names:
        try:
            terms[name] = validator.terms(name)
        except UnknownEmotionError:
            terms[name] = (name.lower(),)
    return sum(
        bool(find_leaks(text, terms[view.names[lab]]))
        for text, lab in zip(view.texts, view.labels, strict=True)
    )


def save_train_ids(folder: Path, records: Sequence[Story | Dialogue], data_hash: str) -> None:
    """``train_ids.json``: the ids and text hashes of the fitted records (for overlap checks)."""
    payload = {
        "train_data_hash": data_hash,
        "ids": [r.id for r in records],
        "text_sha256": [text_hash(r.text) for r in records],
    }
    atomic_write_bytes(folder / TRAIN_IDS_FILE, (json.dumps(payload, indent=1) + "\n").encode())


def load_train_ids(folder: str | Path) -> tuple[set[str], set[str]] | None:
    """The fitted records' ids and text hashes stored with a vector set (``None``: not stored)."""
    path = Path(folder) / TRAIN_IDS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        return set(map(str, data["ids"])), set(map(str, data["text_sha256"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable list of training records ({exc})") from None


def fitted_texts(folder: str | Path, vs: VectorSet) -> tuple[list[str], list[str]] | None:
    """The texts and labels a set was fitted on, re-read from ``meta.data_source`` when that
    source is still readable and still holds every fitted text (matched by text hash);
    ``None`` otherwise. Used to train the lexical baseline on the same data as the vectors."""
    ds, ids = vs.meta.data_source, load_train_ids(folder)
    if ds is None or ids is None or vs.meta.kind != "emotion":
        return None
    try:
        if ds.format == "stage":
            recs: list[Any] = list(read_fit_records(ds.name))
        else:
            from emocurate.vectors.labelled import read_labelled

            recs = read_labelled(
                ds.name,
                text_field=ds.text_field or "text",
                label_field=ds.label_field or "label",
                id_field=ds.id_field,
                label_map=ds.label_map,
            ).records
    except (InputError, ConfigError, OSError):
        return None
    hashes = ids[1]
    chosen = {text_hash(r.text): r for r in recs if isinstance(r, Story)}
    if not hashes <= set(chosen):
        return None
    return [chosen[h].text for h in sorted(hashes)], [chosen[h].emotion for h in sorted(hashes)]


@dataclass
class _SeedScores:
    """Held-out z-scores of one (view, layer, seed): record indices and ``[n, E]`` scores."""

    index: list[torch.Tensor] = field(default_factory=list)
    scores: list[torch.Tensor] = field(default_factory=list)

    def ordered(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.cat(self.index)
        order = idx.argsort()
        return idx[order], torch.cat(self.scores)[order]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


@dataclass
class _FitData:
    """The usable records of one fit, tokenised, with their labelled views and candidate layers."""

    where: str  # names the records in messages
    cfg: FitConfig  # ``skip`` resolved
    lm: LoadedModel
    records: list[Any]  # the usable records (a token to pool in every view)
    ids: list[list[int]]
    views: list[View]
    candidates: list[int]
    keep_all: bool  # save every candidate layer (``all`` or a list), else the chosen one
    max_length: int
    n_short: int  # records left out: no token to pool
    data_source: FitDataSource


@dataclass
class _Splits:
    """The evaluation splits (on the first view's labels) as masks over the usable records."""

    seeds: list[int]
    splits: list[tuple[list[int], list[int]]]
    held_mask: torch.Tensor  # [S, n] bool, on the CPU
    train_mask: torch.Tensor  # [S, n] bool, on the model's device
    n_train: int  # training rows of the first split (every record without splits)
    n_held: int


@dataclass
class _Sums:
    """What pass 1 accumulates: per-label sums per view and layer, token moments, text spread."""

    stats: dict[str, dict[int, ViewStats]]
    moments: dict[int, Moments]  # every pooled token of the first view
    doc_sum: dict[int, torch.Tensor]  # [d] float64 over pooled texts (label-free)
    doc_sq: dict[int, torch.Tensor]
    doc_n: dict[int, int]


@dataclass
class _Recipe:
    """The post-processing every aggregator's output goes through, and the z-score reference."""

    ref_moments: dict[int, Moments]
    reference_source: str  # "neutral" | "train_tokens"
    neutral_texts: list[str]
    n_neutral: int
    scale: dict[int, torch.Tensor]  # per-dimension sd (``standardize="dims"``)
    pcs: dict[int, tuple[torch.Tensor, int]]  # neutral PCs projected out, and their number

    def finish(self, v: torch.Tensor, layer: int) -> torch.Tensor:
        """The saved reading direction from an aggregator's raw differences."""
        return recipe_direction(
            v, self.scale.get(layer), self.pcs[layer][0] if layer in self.pcs else None
        )

    def unit_and_ref(
        self, v: torch.Tensor, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit directions and the mean and sd of their projections on the reference."""
        unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        mean, std = reference_from_moments(unit, self.ref_moments[layer])
        return unit, mean, std


@dataclass
class _Fit:
    """One fit's state between its steps: data, splits, sums, recipe and the aggregator."""

    data: _FitData
    splits: _Splits
    sums: _Sums
    recipe: _Recipe
    aggregate: Aggregator
    sums_only: bool

    def direction(
        self,
        view: View,
        layer: int,
        sums: torch.Tensor,
        counts: torch.Tensor,
        train: torch.Tensor | None,
    ) -> torch.Tensor:
        """Aggregate (the training rows when ``train`` is given), then apply the recipe."""
        n_labels, seed = len(view.names), self.data.cfg.seed
        pooled = Pooled(sums=sums, counts=counts, n_labels=n_labels, seed=seed)
        if not self.sums_only:
            st = self.sums.stats[view.kind][layer]
            rows, ridx = torch.cat(st.rows), torch.cat(st.row_index)
            labels = torch.tensor(view.labels)[ridx]
            if train is not None:
                sel = train.cpu()[ridx]
                rows, labels = rows[sel], labels[sel]
            pooled = Pooled(sums, counts, n_labels, seed, rows=rows, labels=labels)
        return self.recipe.finish(self.aggregate(pooled), layer)


def fit_vectors(
    records_dir: str | Path,
    cfg: FitConfig,
    out_dir: str | Path,
    *,
    neutral_dir: str | Path | None = None,
    lm: LoadedModel | None = None,
    records: list[Story] | list[Dialogue] | None = None,
    data_source: FitDataSource | None = None,
) -> VectorSet:
    """Fit, evaluate over split seeds, choose the layer and save into ``out_dir``.

    ``records`` (with ``data_source``) are fitted instead of reading ``records_dir``, which then
    only names them in messages (``fit --records``: :mod:`emocurate.vectors.labelled`).

    Story records give one ``emotion`` VectorSet saved in ``out_dir``; Dialogue records give
    ``speaker_human`` and ``speaker_assistant`` sets in ``out_dir/human`` and
    ``out_dir/assistant`` (the assistant set is returned). The z-score reference comes from the
    neutral records when ``neutral_dir`` is given (``meta.reference_source == "neutral"``, and
    the neutral PCs are projected out), else from every pooled token of the fitted records
    (``"train_tokens"``). Each folder also gets ``evaluation.json`` (:class:`Evaluation`) and
    ``train_ids.json``.

    The steps: prepare the records, one pass to accumulate per-label sums, the recipe (neutral
    reference, PCs, scale), directions by the ``cfg.method`` aggregator of :data:`AGGREGATORS`
    for each split and a second pass scoring the held-out rows, then per view the layer choice,
    the vectors refitted on every record, and the saved files.
    """
    aggregate, sums_only = get_aggregator(cfg.method)
    data = _prepare(records_dir, cfg, lm, records, data_source)
    splits = _evaluation_splits(data)
    sums = _accumulate(data, splits, keep_rows=not sums_only)
    recipe = _recipe(data, sums, neutral_dir)
    fit = _Fit(data, splits, sums, recipe, aggregate, sums_only)
    scores = _held_out_scores(fit)
    data_hash = records_hash(
        [
            {"id": r.id, "text": r.text, "labels": [v.names[v.labels[i]] for v in data.views]}
            for i, r in enumerate(data.records)
        ]
    )
    out_root = ensure_dir(out_dir)
    result: VectorSet | None = None
    for view in data.views:
        result = _fit_and_save_view(fit, view, scores[view.kind], out_root, data_hash)
    assert result is not None
    return result


def _prepare(
    records_dir: str | Path,
    cfg: FitConfig,
    lm: LoadedModel | None,
    records: list[Story] | list[Dialogue] | None,
    data_source: FitDataSource | None,
) -> _FitData:
    """Read the records (a stage folder or ``cfg.records``), load the model, tokenise, keep the
    records with a token to pool, and refuse what cannot be fitted or evaluated."""
    if records is None and cfg.records:
        records, data_source = load_labelled(cfg)
        records_dir = data_source.name
    if records is None:
        records = read_fit_records(records_dir)
    if data_source is None:
        data_source = FitDataSource(
            name=str(records_dir), n_rows=len(records), licence=cfg.data_licence
        )
    cfg = cfg.model_copy(update={"skip": cfg.resolved_skip()})
    if len(records) < 2:
        raise InputError(
            f"{records_dir}: need at least 2 records to fit vectors, found {len(records)}"
        )
    if lm is None:
        lm = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    candidates, keep_all = resolve_layers(cfg.layers, lm.n_layers, cfg.max_auto_layers)
    max_length = cfg.max_length or context_length(lm)
    ids_all, offsets = encode_with_offsets(lm.tokenizer, [r.text for r in records], max_length)
    views_all, usable = build_views(records, lm.tokenizer, ids_all, offsets, cfg)
    keep = [i for i, u in enumerate(usable) if u]
    if len(keep) < 2:
        raise InputError(
            f"{records_dir}: only {len(keep)} of {len(records)} records have a token at or after "
            f"the pooling start (token {cfg.resolved_skip()}, after the prompt's opening); lower --skip or "
            "pass --short clip"
        )
    views = [_subset(v, keep, rename=True) for v in views_all]
    for view in views:
        if len(view.names) < 2:
            raise InputError(
                f"{records_dir}: need at least 2 distinct emotions for {view.kind} vectors, "
                f"found {view.names}"
            )
    check_holdout_counts(views[0], cfg.holdout, str(records_dir))
    return _FitData(
        where=str(records_dir),
        cfg=cfg,
        lm=lm,
        records=[records[i] for i in keep],
        ids=[ids_all[i] for i in keep],
        views=views,
        candidates=candidates,
        keep_all=keep_all,
        max_length=max_length,
        n_short=len(records) - len(keep),
        data_source=data_source,
    )


def _evaluation_splits(data: _FitData) -> _Splits:
    """``eval_seeds`` stratified splits on the first view's labels (stories: the emotion;
    dialogues: the human's); none with ``holdout`` 0 or too few records to hold any out."""
    cfg, n = data.cfg, len(data.ids)
    seeds = [cfg.seed + k for k in range(cfg.eval_seeds)] if cfg.holdout > 0 else []
    splits = [split_holdout(data.views[0].labels, cfg.holdout, s) for s in seeds]
    if splits and not splits[0][1]:
        seeds, splits = [], []  # too few records per emotion to hold any out
    held_mask = torch.zeros(len(splits), n, dtype=torch.bool)
    for k, (_, held) in enumerate(splits):
        held_mask[k, held] = True
    return _Splits(
        seeds=seeds,
        splits=splits,
        held_mask=held_mask,
        train_mask=(~held_mask).to(data.lm.device),
        n_train=len(splits[0][0]) if splits else n,
        n_held=len(splits[0][1]) if splits else 0,
    )


def _accumulate(data: _FitData, splits: _Splits, *, keep_rows: bool) -> _Sums:
    """Pass 1: every record -> per-label sums (all records, and each seed's training rows), the
    token moments and the label-free spread of the pooled texts; the pooled rows themselves
    only when the aggregator reads them (``keep_rows``), so ``mean_diff`` memory stays flat."""
    lm, dev, views, candidates = data.lm, data.lm.device, data.views, data.candidates
    n_seeds, train_mask = len(splits.splits), splits.train_mask
    sums = _Sums(
        stats={
            v.kind: {
                layer: ViewStats(
                    sums=torch.zeros(len(v.names), lm.hidden_size, device=dev),
                    counts=torch.zeros(len(v.names), device=dev),
                    seed_sums=torch.zeros(n_seeds, len(v.names), lm.hidden_size, device=dev),
                    seed_counts=torch.zeros(n_seeds, len(v.names), device=dev),
                )
                for layer in candidates
            }
            for v in views
        },
        moments={layer: Moments() for layer in candidates},
        doc_sum={layer: torch.zeros(lm.hidden_size, dtype=torch.float64) for layer in candidates},
        doc_sq={layer: torch.zeros(lm.hidden_size, dtype=torch.float64) for layer in candidates},
        doc_n=dict.fromkeys(candidates, 0),
    )

    def add_record(
        view: View, indices: list[int], valid: torch.Tensor, pooled: dict[int, torch.Tensor]
    ) -> None:
        idx = torch.tensor(indices, device=valid.device)[valid]
        labels = torch.tensor([view.labels[i] for i in indices], device=valid.device)[valid]
        ones = torch.ones(len(labels), device=valid.device)
        in_train = train_mask[:, idx.to(dev)].to(valid.device)
        for layer, p in pooled.items():
            rows = p[valid]
            st = sums.stats[view.kind][layer]
            if view is views[0]:  # label-free per-dimension spread of the pooled texts
                sums.doc_sum[layer] += rows.double().sum(0).cpu()
                sums.doc_sq[layer] += rows.double().pow(2).sum(0).cpu()
                sums.doc_n[layer] += rows.shape[0]
            st.sums.index_add_(0, labels, rows)
            st.counts.index_add_(0, labels, ones)
            for k in range(n_seeds):
                m = in_train[k]
                st.seed_sums[k].index_add_(0, labels[m], rows[m])
                st.seed_counts[k].index_add_(0, labels[m], ones[m])
            if keep_rows:
                st.rows.append(rows.cpu())
                st.row_index.append(idx.cpu())

    stream_pooled(
        lm,
        data.ids,
        views,
        candidates,
        batch_tokens=data.cfg.batch_tokens,
        on_pooled=add_record,
        desc="fit: records",
        moments=sums.moments,
    )
    return sums


def _recipe(data: _FitData, sums: _Sums, neutral_dir: str | Path | None) -> _Recipe:
    """The z-score reference (neutral text when given, else the fitted tokens), the neutral PCs
    to project out and the per-dimension scale (``standardize="dims"``)."""
    cfg, candidates = data.cfg, data.candidates
    ref_moments, reference_source = sums.moments, "train_tokens"
    neutral_texts: list[str] = []
    if neutral_dir is not None:
        neutral_texts = read_texts(neutral_dir)
        if neutral_texts:
            ref_moments = neutral_moments(
                data.lm,
                neutral_texts,
                candidates,
                batch_tokens=cfg.batch_tokens,
                max_length=data.max_length,
            )
            reference_source = "neutral"
    scale: dict[int, torch.Tensor] = {}
    if cfg.standardize == "dims":
        for layer in candidates:
            mean = sums.doc_sum[layer] / max(sums.doc_n[layer], 1)
            var = sums.doc_sq[layer] / max(sums.doc_n[layer], 1) - mean**2
            scale[layer] = dim_scale(var.clamp_min(0))
    pcs: dict[int, tuple[torch.Tensor, int]] = {}
    if reference_source == "neutral" and cfg.neutral_variance > 0:
        for layer in candidates:
            cov = ref_moments[layer].cov().cpu()
            if layer in scale:  # the PCs of the standardised neutral activations
                cov = cov / torch.outer(scale[layer], scale[layer])
            pcs[layer] = neutral_projection(cov, cfg.neutral_variance)
    return _Recipe(
        ref_moments=ref_moments,
        reference_source=reference_source,
        neutral_texts=neutral_texts,
        n_neutral=len(neutral_texts),
        scale=scale,
        pcs=pcs,
    )


def _held_out_scores(fit: _Fit) -> dict[str, dict[int, list[_SeedScores]]]:
    """Per seed, vectors from its training rows; pass 2 scores each record in the seeds that
    hold it out (only ``[n, E]`` z-scores are kept)."""
    data, held_mask = fit.data, fit.splits.held_mask
    n_seeds, views, candidates = len(fit.splits.splits), data.views, data.candidates
    seed_dirs = {
        v.kind: {
            layer: [
                fit.recipe.unit_and_ref(
                    fit.direction(
                        v,
                        layer,
                        fit.sums.stats[v.kind][layer].seed_sums[k],
                        fit.sums.stats[v.kind][layer].seed_counts[k],
                        fit.splits.train_mask[k],
                    ),
                    layer,
                )
                for k in range(n_seeds)
            ]
            for layer in candidates
        }
        for v in views
    }
    scores = {
        v.kind: {layer: [_SeedScores() for _ in range(n_seeds)] for layer in candidates}
        for v in views
    }
    if not n_seeds:
        return scores
    held_rows = held_mask.any(0).nonzero().flatten().tolist()

    def add_held(
        view: View, indices: list[int], valid: torch.Tensor, pooled: dict[int, torch.Tensor]
    ) -> None:
        orig = torch.tensor([held_rows[i] for i in indices])
        held_here = held_mask[:, orig] & valid.cpu().unsqueeze(0)
        for layer, p in pooled.items():
            for k in range(n_seeds):
                m = held_here[k]
                if not bool(m.any()):
                    continue
                unit, mean, std = seed_dirs[view.kind][layer][k]
                z = (p[m.to(p.device)] @ unit.T.to(p.device) - mean.to(p.device)) / std.to(
                    p.device
                ).clamp_min(1e-6)
                scores[view.kind][layer][k].index.append(orig[m])
                scores[view.kind][layer][k].scores.append(z.float().cpu())

    stream_pooled(
        data.lm,
        [data.ids[i] for i in held_rows],
        [_subset(v, held_rows) for v in views],
        candidates,
        batch_tokens=data.cfg.batch_tokens,
        on_pooled=add_held,
        desc="fit: held-out records",
    )
    return scores


def _layer_metrics(
    fit: _Fit, view: View, scores: dict[int, list[_SeedScores]]
) -> tuple[
    dict[int, list[ClassificationMetrics]], dict[int, torch.Tensor], dict[int, LayerMetrics]
]:
    """Per candidate layer: each seed's held-out metrics, the first seed's per-row correctness
    (the layer test reads it) and the sweep's summary."""
    gold = torch.tensor(view.labels)
    per_layer: dict[int, list[ClassificationMetrics]] = {}
    correct0: dict[int, torch.Tensor] = {}
    for layer in fit.data.candidates:
        per_layer[layer] = []
        for k in range(len(fit.splits.splits)):
            idx, z = scores[layer][k].ordered()
            per_layer[layer].append(classification_metrics(z, gold[idx], view.names))
            if k == 0:
                correct0[layer] = z.argmax(1) == gold[idx]
    n_train, n_held = fit.splits.n_train, fit.splits.n_held
    sweep = {
        layer: LayerMetrics(
            accuracy=_mean([m.accuracy for m in ms]),
            accuracy_sd=spread([m.accuracy for m in ms], n_train, n_held).sd,
            top3=_mean([m.top3 for m in ms]),
            auroc_mean=_mean([m.auroc_mean for m in ms]),
            selection_accuracy=ms[0].accuracy,
        )
        for layer, ms in per_layer.items()
        if ms
    }
    return per_layer, correct0, sweep


def _fit_and_save_view(
    fit: _Fit,
    view: View,
    scores: dict[int, list[_SeedScores]],
    out_root: Path,
    data_hash: str,
) -> VectorSet:
    """Choose the layer, refit the vectors on every usable record, evaluate and save one view's
    set (``out_root``, or its speaker subfolder)."""
    data, recipe = fit.data, fit.recipe
    per_layer, correct0, sweep = _layer_metrics(fit, view, scores)
    seeds = fit.splits.seeds
    selection = choose_layer(
        correct0, data.candidates, data.lm.n_layers, seed=seeds[0] if seeds else None
    )
    layers_kept = data.candidates if data.keep_all else [selection.layer]
    vecs: dict[int, torch.Tensor] = {}
    ref_mean: dict[int, torch.Tensor] = {}
    ref_std: dict[int, torch.Tensor] = {}
    for layer in layers_kept:  # the saved vectors: every usable record
        st = fit.sums.stats[view.kind][layer]
        missing = [view.names[e] for e in range(len(view.names)) if st.counts[e] == 0]
        if missing:
            raise InputError(f"{data.where}: no tokens for {view.kind} emotion(s) {missing}")
        vecs[layer] = fit.direction(view, layer, st.sums, st.counts, None)
        _, ref_mean[layer], ref_std[layer] = recipe.unit_and_ref(vecs[layer], layer)
    meta = _vectorset_meta(fit, view, selection, layers_kept, sweep, data_hash)
    vs = VectorSet(vectors=vecs, meta=meta, ref_mean=ref_mean, ref_std=ref_std)
    n = len(data.ids)
    ev = _evaluation(
        view,
        vs,
        data.lm,
        data.cfg,
        selection=selection,
        per_seed=per_layer.get(selection.layer, []),
        sweep=sweep,
        seeds=seeds,
        splits=fit.splits.splits,
    )
    ev.n_records = n
    ev.n_skipped_short = data.n_short
    ev.label_leak_share, ev.n_label_leak, ev.n_leak_checked = (
        meta.label_leak_share,
        meta.n_label_leak,
        n,
    )
    ev.reference_source, ev.n_neutral_texts = recipe.reference_source, recipe.n_neutral
    vs.meta.evaluation = ev.summary()
    target = out_root if len(data.views) == 1 else out_root / SPEAKER_SUBDIRS[view.kind]
    vs.save(target)
    atomic_write_bytes(target / EVALUATION_FILE, (ev.model_dump_json(indent=2) + "\n").encode())
    save_train_ids(target, data.records, data_hash)
    if recipe.reference_source == "neutral":
        save_neutral_reference(target, recipe.neutral_texts)
    return vs


def _vectorset_meta(
    fit: _Fit,
    view: View,
    selection: LayerSelection,
    layers_kept: list[int],
    sweep: dict[int, LayerMetrics],
    data_hash: str,
) -> VectorSetMeta:
    """``vectorset.json``: the recipe as applied, the data, the layer choice and the sweep."""
    data, cfg, lm, recipe = fit.data, fit.data.cfg, fit.data.lm, fit.recipe
    n = len(data.ids)
    counts = fit.sums.stats[view.kind][selection.layer].counts
    n_leak = label_leaks(view)
    pooling = (
        "mean over each speaker's turn tokens"
        if view.ranges is not None
        else "last token"
        if cfg.pooling == "last"
        else "mean from token skip (exactly; never before the first generated token) to end"
        + (" (short records: clipped to n//2)" if cfg.short == "clip" else "")
    )
    return VectorSetMeta(
        names=view.names,
        layers=layers_kept,
        default_layer=selection.layer,
        model_id=lm.model_id,
        model_revision=lm.revision,
        model_type=model_type(lm.model),
        hidden_size=lm.hidden_size,
        n_model_layers=lm.n_layers,
        kind=view.kind,
        hook_site=f"{lm.layer_path}[i] output (residual stream)",
        pooling=pooling,
        skip=cfg.resolved_skip() if view.ranges is None else 0,
        short=cfg.short,
        method=cfg.method,
        train_data_hash=data_hash,
        n_train_records=n,
        n_skipped_short=data.n_short,
        label_leak_share=n_leak / n,
        n_label_leak=n_leak,
        n_leak_checked=n,
        neutral_pcs={str(k): recipe.pcs[k][1] for k in layers_kept if k in recipe.pcs},
        neutral_variance=cfg.neutral_variance if recipe.reference_source == "neutral" else 0.0,
        standardize=cfg.standardize,
        has_reference=True,
        reference_source=recipe.reference_source,
        residual_norm={str(k): fit.sums.moments[k].mean_norm for k in layers_kept},
        layer_selection=selection.rule,
        sweep={str(k): m.model_dump(exclude_none=True) for k, m in sweep.items()},
        holdout=cfg.holdout,
        seed=cfg.seed,
        eval_seeds=len(fit.splits.splits),
        emotion_counts={e: int(c) for e, c in zip(view.names, counts.tolist(), strict=True)},
        data_source=data.data_source.model_copy(update={"n_used": n}),
    )


NEUTRAL_REFERENCE = "neutral/neutral.jsonl"
"""The neutral texts a set was fitted with, kept beside it: ``emocurate calibrate VECTORS``
calibrates the corpus flags on them when no other reference is given."""


def save_neutral_reference(target: Path, texts: Sequence[str]) -> Path:
    """Write the neutral texts as JSON lines (``id``, ``text``) inside the vector folder."""
    path = target / NEUTRAL_REFERENCE
    lines = (
        json.dumps({"id": f"neutral-{i:05d}", "text": t}, ensure_ascii=False)
        for i, t in enumerate(texts)
    )
    ensure_dir(path.parent)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def _evaluation(
    view: View,
    vs: VectorSet,
    lm: LoadedModel,
    cfg: FitConfig,
    *,
    selection: LayerSelection,
    per_seed: list[ClassificationMetrics],
    sweep: dict[int, LayerMetrics],
    seeds: list[int],
    splits: list[tuple[list[int], list[int]]],
) -> Evaluation:
    """The :class:`Evaluation` of one view at the chosen layer from its per-seed metrics."""
    layer = selection.layer
    names = view.names
    ev = Evaluation(
        kind=view.kind,
        method=cfg.method,
        layer=layer,
        chosen_layer=layer,
        layer_selection=selection.rule,
        selection=selection,
        labels=names,
        seeds=seeds,
        holdout=cfg.holdout,
        chance=1.0 / len(names),
        sweep={str(k): m for k, m in sweep.items()},
        geometry=GeometryReport.model_validate(geometry(vs.vectors[layer], names)),
        logit_lens=logit_lens(lm, vs.vectors[layer], names, cfg.logit_lens_k),
    )
    if not per_seed:
        return ev
    n_train, n_held = len(splits[0][0]), len(splits[0][1])
    acc = spread([m.accuracy for m in per_seed], n_train, n_held)
    lexical = lexical_baseline(view.texts, view.labels, splits)
    majority = majority_baseline(view.labels, splits)
    auroc: dict[str, float] = {}
    for name in names:
        vals = [m.auroc[name] for m in per_seed if name in m.auroc]
        if vals:
            auroc[name] = _mean(vals)
    confusion = [[0] * len(names) for _ in names]
    for m in per_seed:
        for i, row in enumerate(m.confusion):
            for j, v in enumerate(row):
                confusion[i][j] += int(v)
    ev.n_train, ev.n_heldout, ev.n = n_train, n_held, n_held
    ev.accuracy, ev.accuracy_sd, ev.accuracy_ci = acc.mean, acc.sd, acc.ci
    ev.accuracy_per_seed = acc.per_seed
    ev.top3 = _mean([m.top3 for m in per_seed])
    ev.majority, ev.majority_per_seed = _mean(majority), majority
    ev.lexical = spread(lexical, n_train, n_held)
    ev.vs_lexical = compare(acc.per_seed, lexical, n_train, n_held)
    ev.auroc, ev.auroc_mean = auroc, _mean(list(auroc.values()))
    ev.confusion = confusion
    return ev
