"""Evidence that the vectors mean what their names say, with its spread and its baselines.

- Classification: held-out nearest-vector accuracy (argmax of z-scored projections, the same
  scores the corpus scorer uses), top-3, confusion matrix, per-emotion one-vs-rest AUROC.
- Honest figures (:class:`Evaluation`, written as ``evaluation.json`` by ``fit``): accuracy over
  several split seeds as mean ± sd with a 95% interval (the corrected resampled t interval of
  Nadeau & Bengio, 2003, which widens the naive t interval for the overlap of the seeds'
  training sets), beside chance (1/E), the majority class and a lexical baseline (TF-IDF +
  logistic regression on the same splits and the same pooled text), and a paired comparison
  with the lexical baseline that says plainly whether the vectors beat it.
- Geometry: PCA of the vectors (centred over emotions), variance explained, PC1/PC2 coordinates
  per emotion and their correlation with the taxonomy's valence and arousal (PC signs are fixed
  so PC1 correlates positively with valence and PC2 with arousal).
- Logit lens: the tokens each vector most promotes and suppresses through the final norm's
  gain and the unembedding.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch

from emocurate.artifacts import (  # noqa: F401 - the evaluation artifact, re-exported here
    EVALUATION_FILE,
    INTERVAL,
    LEXICAL,
    ClassificationMetrics,
    Comparison,
    Evaluation,
    GeometryReport,
    LayerMetrics,
    LayerSelection,
    LensTokens,
    LexicalBaseline,
    Spread,
    TransferDifference,
    TransferReport,
    VectorsReport,
    read_evaluation,
)
from emocurate.errors import InputError
from emocurate.records import Dialogue, Story
from emocurate.vectors.capture import context_length
from emocurate.vectors.models import LoadedModel, final_norm, unembedding
from emocurate.vectors.vectorset import VectorSet

if TYPE_CHECKING:  # annotations only; the functions import pooling where they use it
    from emocurate.vectors.pooling import View

PERMUTATIONS = 2000

# ---------------------------------------------------------------------------------------------
# statistics


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k/n``."""
    if n == 0:
        return 0.0, 1.0
    z = 1.959963984540054
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def spread(
    values: Sequence[float], n_train: int, n_heldout: int, *, bounded: bool = True
) -> Spread:
    """Mean, sd and the corrected resampled t interval of per-seed values (see :data:`INTERVAL`).

    ``bounded`` clips the interval to [0, 1] (accuracies); with one seed the interval is
    Wilson's on that split's ``n_heldout`` rows.
    """
    vals = [float(v) for v in values]
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        if not bounded:  # a difference of proportions (may be negative): no interval from one split
            return Spread(mean=mean, sd=0.0, ci=(mean, mean), per_seed=vals)
        k = round(mean * n_heldout)
        return Spread(mean=mean, sd=0.0, ci=wilson(k, n_heldout), per_seed=vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    half = _t975(len(vals) - 1) * sd * math.sqrt(1 / len(vals) + n_heldout / max(n_train, 1))
    lo, hi = mean - half, mean + half
    if bounded:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return Spread(mean=mean, sd=sd, ci=(lo, hi), per_seed=vals)


def compare(
    vectors: Sequence[float], lexical: Sequence[float], n_train: int, n_heldout: int
) -> Comparison:
    """Paired per-seed difference vectors − lexical with its interval, and a plain verdict."""
    d = spread(
        [a - b for a, b in zip(vectors, lexical, strict=True)], n_train, n_heldout, bounded=False
    )
    lo, hi = d.ci
    if len(d.per_seed) < 2:
        lo, hi = d.mean, d.mean
        verdict: Literal["above", "below", "not distinguishable"] = "not distinguishable"
    elif lo > 0:
        verdict = "above"
    elif hi < 0:
        verdict = "below"
    else:
        verdict = "not distinguishable"
    sentence = {
        "above": "The vectors beat the lexical baseline: the 95% interval of their paired "
        f"accuracy gain ({lo:+.3f} to {hi:+.3f}) lies above zero.",
        "below": "The vectors do not beat the lexical baseline: a keyword classifier on the same "
        f"text is more accurate (paired gain {lo:+.3f} to {hi:+.3f}, 95% interval).",
        "not distinguishable": "The vectors do not beat the lexical baseline: the 95% interval "
        f"of their paired accuracy gain ({lo:+.3f} to {hi:+.3f}) includes zero."
        if len(d.per_seed) >= 2
        else "Whether the vectors beat the lexical baseline is not known: one split has no "
        "interval (use several --eval-seeds).",
    }[verdict]
    return Comparison(diff_mean=d.mean, diff_ci=(lo, hi), verdict=verdict, sentence=sentence)


def mcnemar_one_sided(b: int, c: int) -> float:
    """Exact one-sided McNemar p-value: P(X >= b), X ~ Binomial(b + c, 1/2).

    ``b`` counts rows the challenger gets right and the incumbent wrong, ``c`` the reverse.
    """
    n = b + c
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(b, n + 1)) / 2**n)


def lexical_baseline(
    texts: Sequence[str], labels: Sequence[int], splits: Sequence[tuple[list[int], list[int]]]
) -> list[float]:
    """Held-out accuracy of TF-IDF + logistic regression per ``(train, held)`` split.

    The vectorizer is fitted on each split's training rows only. A split whose training rows
    hold one label (or no words) predicts that label.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    out: list[float] = []
    for train, held in splits:
        y_train = [labels[i] for i in train]
        y_held = [labels[i] for i in held]
        if not held:
            continue
        try:
            vec = TfidfVectorizer(sublinear_tf=True)
            x_train = vec.fit_transform([texts[i] for i in train])
        except ValueError:  # no words at all in the training texts
            x_train = None
        if x_train is None or len(set(y_train)) < 2:
            top = max(set(y_train), key=y_train.count)
            pred = [top] * len(held)
        else:
            clf = LogisticRegression(max_iter=2000, C=1.0)
            clf.fit(x_train, y_train)
            pred = [int(p) for p in clf.predict(vec.transform([texts[i] for i in held]))]
        out.append(sum(p == g for p, g in zip(pred, y_held, strict=True)) / len(held))
    return out


def lexical_on(
    texts: Sequence[str],
    labels: Sequence[int],
    names: Sequence[str],
    vector_correct: Sequence[bool],
    train: tuple[list[str], list[str]] | None,
    *,
    seed: int = 0,
    n_boot: int = 2000,
) -> LexicalBaseline:
    """The lexical baseline on evaluated texts and its paired comparison with the vectors.

    Trained on ``train`` (texts, label names) when given (``lexical_kind`` "transfer"), else
    5-fold stratified cross-validation on the evaluated texts themselves ("in-domain"). The
    comparison is a paired bootstrap (``n_boot`` resamples of the texts) of the accuracy
    difference vectors − lexical, 95% percentile interval.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.array(labels)
    pred = np.full(len(y), -1)
    kind = "transfer"
    if train is not None and len({lab for lab in train[1] if lab in names}) >= 2:
        keep = [i for i, lab in enumerate(train[1]) if lab in names]
        vec = TfidfVectorizer(sublinear_tf=True)
        x = vec.fit_transform([train[0][i] for i in keep])
        clf = LogisticRegression(max_iter=2000, C=1.0)
        clf.fit(x, [names.index(train[1][i]) for i in keep])
        pred = clf.predict(vec.transform(list(texts)))
    else:
        kind = "in-domain (5-fold cross-validation on the evaluated records)"
        present = np.bincount(y)[np.bincount(y) > 0] if len(y) else np.zeros(0)
        if len(present) < 2 or int(present.min()) < 2:
            return LexicalBaseline(
                lexical=None, lexical_kind="not measured (too few records per label)"
            )
        n_splits = min(5, int(present.min()))
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for tr, te in folds.split(np.zeros(len(y)), y):
            vec = TfidfVectorizer(sublinear_tf=True)
            try:
                x = vec.fit_transform([texts[i] for i in tr])
            except ValueError:  # no words in the training fold
                pred[te] = np.bincount(y[tr]).argmax()
                continue
            clf = LogisticRegression(max_iter=2000, C=1.0)
            clf.fit(x, y[tr])
            pred[te] = clf.predict(vec.transform([texts[i] for i in te]))
    lex_correct = pred == y
    vec_correct = np.array(vector_correct, dtype=bool)
    diff = vec_correct.astype(float) - lex_correct.astype(float)
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(1)
    lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    verdict: Literal["above", "below", "not distinguishable"] = (
        "above" if lo > 0 else "below" if hi < 0 else "not distinguishable"
    )
    k = int(lex_correct.sum())
    return LexicalBaseline(
        lexical=k / len(y),
        lexical_ci=wilson(k, len(y)),
        lexical_kind=kind,
        vs_lexical=TransferDifference(
            diff_mean=float(diff.mean()),
            diff_ci=(lo, hi),
            verdict=verdict,
            interval=f"95% paired bootstrap over the {len(y)} evaluated records",
        ),
    )


def majority_baseline(
    labels: Sequence[int], splits: Sequence[tuple[list[int], list[int]]]
) -> list[float]:
    """Held-out accuracy of always predicting each split's most frequent training label."""
    out: list[float] = []
    for train, held in splits:
        if not held:
            continue
        y_train = [labels[i] for i in train]
        top = max(sorted(set(y_train)), key=y_train.count)
        out.append(sum(labels[i] == top for i in held) / len(held))
    return out


# ---------------------------------------------------------------------------------------------
# metrics


def classification_metrics(
    scores: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> ClassificationMetrics:
    """Accuracy, top-3, confusion matrix and per-emotion AUROC of ``scores [n, E]`` vs ``labels [n]``."""
    from sklearn.metrics import roc_auc_score

    n, n_e = scores.shape
    if n == 0:
        return ClassificationMetrics(
            n=0,
            accuracy=0.0,
            top3=0.0,
            chance=1.0 / max(n_e, 1),
            auroc_mean=0.0,
            auroc={},
            confusion=[],
            labels=list(names),
        )
    pred = scores.argmax(1)
    acc = float((pred == labels).float().mean())
    k = min(3, n_e)
    top3 = float((scores.topk(k, dim=1).indices == labels.unsqueeze(1)).any(1).float().mean())
    confusion = torch.zeros(n_e, n_e, dtype=torch.long)
    for g, p in zip(labels.tolist(), pred.tolist(), strict=True):
        confusion[g, p] += 1
    auroc: dict[str, float] = {}
    for e, name in enumerate(names):
        pos = labels == e
        if 0 < int(pos.sum()) < n:
            auroc[name] = float(roc_auc_score(pos.numpy(), scores[:, e].numpy()))
    return ClassificationMetrics(
        n=int(n),
        accuracy=acc,
        top3=top3,
        chance=1.0 / n_e,
        auroc_mean=float(sum(auroc.values()) / len(auroc)) if auroc else 0.0,
        auroc=auroc,
        confusion=confusion.tolist(),
        labels=list(names),
    )


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


def _perm_p(x: torch.Tensor, y: torch.Tensor, r_obs: float, seed: int = 0) -> float:
    """Permutation p-value of ``|r|``: share of label shuffles with a correlation as large."""
    rng = random.Random(seed)
    idx = list(range(len(y)))
    hits = 0
    for _ in range(PERMUTATIONS):
        rng.shuffle(idx)
        if abs(_pearson(x, y[idx])) >= abs(r_obs) - 1e-12:
            hits += 1
    return (hits + 1) / (PERMUTATIONS + 1)


def geometry(vectors: torch.Tensor, names: Sequence[str]) -> dict[str, Any]:
    """PCA of the emotion vectors and its agreement with the taxonomy's valence/arousal.

    See :class:`GeometryReport` for the orientation convention and the permutation p-values.
    """
    x = vectors.double()
    x = x - x.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    var = s**2
    ratio = (var / var.sum().clamp_min(1e-30)).tolist()
    coords = x @ vh[:2].T if vh.shape[0] >= 2 else torch.zeros(len(names), 2, dtype=torch.float64)
    out: dict[str, Any] = {"variance_explained": ratio[:10]}
    known = _taxonomy_axes(names)
    if known is not None and len(names) >= 3:
        val, aro, mask = known
        if int(mask.sum()) >= 3:
            r_v = _pearson(coords[mask, 0], val[mask])
            if r_v < 0:
                coords[:, 0] = -coords[:, 0]
            r_a = _pearson(coords[mask, 1], aro[mask])
            if r_a < 0:
                coords[:, 1] = -coords[:, 1]
            out["pc1_valence_r"] = abs(r_v)
            out["pc2_arousal_r"] = abs(r_a)
            out["pc1_arousal_r"] = _pearson(coords[mask, 0], aro[mask])
            out["pc2_valence_r"] = _pearson(coords[mask, 1], val[mask])
            out["pc1_valence_p"] = _perm_p(coords[mask, 0], val[mask], r_v)
            out["pc2_arousal_p"] = _perm_p(coords[mask, 1], aro[mask], r_a, seed=1)
            out["n_in_taxonomy"] = int(mask.sum())
    out["coords"] = {n: [float(coords[i, 0]), float(coords[i, 1])] for i, n in enumerate(names)}
    return out


def _taxonomy_axes(names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    try:
        from emocurate.taxonomy import load_taxonomy

        tax = load_taxonomy()
    except Exception:  # no taxonomy file: geometry without the valence/arousal check
        return None
    by = {e.name: e for e in tax.emotions}
    val = torch.tensor([by[n].valence if n in by else 0.0 for n in names], dtype=torch.float64)
    aro = torch.tensor([by[n].arousal if n in by else 0.0 for n in names], dtype=torch.float64)
    mask = torch.tensor([n in by for n in names])
    return val, aro, mask


def logit_lens(
    lm: LoadedModel, vectors: torch.Tensor, names: Sequence[str], k: int = 10
) -> dict[str, LensTokens]:
    """Top promoted and suppressed tokens of each vector through norm gain and unembedding."""
    w_u = unembedding(lm.model).detach().float().cpu()
    v = vectors.float().cpu()
    norm = final_norm(lm.model)
    gain = getattr(norm, "weight", None)
    if isinstance(gain, torch.Tensor) and gain.shape[-1] == v.shape[-1]:
        g = gain.detach().float().cpu()
        # Gemma-style norms scale by (1 + weight)
        if type(norm).__name__.startswith("Gemma"):
            g = 1.0 + g
        v = v * g
    logits = v @ w_u.T
    out: dict[str, LensTokens] = {}
    for i, name in enumerate(names):
        top = logits[i].topk(min(k, logits.shape[1])).indices.tolist()
        bottom = (-logits[i]).topk(min(k, logits.shape[1])).indices.tolist()
        out[name] = LensTokens(
            top=[lm.tokenizer.decode([t]) for t in top],
            bottom=[lm.tokenizer.decode([t]) for t in bottom],
        )
    return out


def full_report(
    vs: VectorSet,
    lm: LoadedModel | None,
    scores: torch.Tensor | None,
    labels: torch.Tensor | None,
    *,
    layer: int | None = None,
    k: int = 10,
) -> VectorsReport:
    """Classification (when scores are given), geometry and logit lens at one layer."""
    layer = vs.layer_or_default(layer)
    report: dict[str, Any] = {"layer": layer, "kind": vs.meta.kind, "method": vs.meta.method}
    if scores is not None and labels is not None:
        report.update(classification_metrics(scores, labels, vs.names).model_dump())
    report["geometry"] = geometry(vs.vectors[layer], vs.names)
    if lm is not None:
        report["logit_lens"] = logit_lens(lm, vs.vectors[layer], vs.names, k)
    return VectorsReport.model_validate(report)


def _label_of(vs: VectorSet, r: Story | Dialogue) -> str:
    if isinstance(r, Dialogue):
        return r.human_emotion if vs.meta.kind == "speaker_human" else r.assistant_emotion
    return r.emotion


def _labelled_texts(
    vs: VectorSet, records: Sequence[Story | Dialogue]
) -> tuple[list[str], list[int], int]:
    texts: list[str] = []
    labels: list[int] = []
    skipped = 0
    for r in records:
        label = _label_of(vs, r)
        if label in vs.names:
            texts.append(r.text)
            labels.append(vs.names.index(label))
        else:
            skipped += 1
    return texts, labels, skipped


def evaluate(
    vs: VectorSet,
    lm: LoadedModel,
    records: Sequence[Story | Dialogue],
    layer: int | None = None,
    *,
    train_ids: tuple[set[str], set[str]] | None = None,
    skip: int | None = None,
    lexical_train: tuple[list[str], list[str]] | None = None,
) -> TransferReport:
    """Evaluate a VectorSet on labelled records (held-out stories, or dialogues for speaker sets).

    ``skip`` overrides the set's pooling start (``0``: the whole text but its first token, a
    document-level reading); records with no token in the window are left out and counted in
    ``n_skipped_short`` (the CLI says so on stderr). Baselines on the same evaluated records:
    ``majority`` (always the most frequent label there) and ``lexical`` (TF-IDF + logistic
    regression trained on ``lexical_train``, the set's own fitting texts, when given: the same
    transfer as the vectors; else 5-fold cross-validated on the evaluated records, an in-domain
    reference), with the paired bootstrap interval of the accuracy difference (``vs_lexical``).

    Pools each record the way the set was fitted (token ``skip`` exactly, never before the
    generated part, the set's ``short`` rule; speaker sets pool over that speaker's turns),
    scores it with the set's z-scored projections, and reports classification metrics (with a
    Wilson interval of the accuracy), geometry and the logit lens. Records whose emotion the
    set lacks are counted in ``skipped``, records too short for the window in
    ``n_skipped_short``. With ``train_ids`` (the fitted records' ids and text hashes), records
    the set was fitted on (same text; ids alone may repeat across datasets) are counted in
    ``n_overlap`` and ``overlap_warning`` says so.
    """
    from emocurate.vectors.pooling import encode_with_offsets

    layer = vs.layer_or_default(layer)
    recs: list[Any] = list(records)
    texts, labels, skipped = _labelled_texts(vs, recs)
    if not texts:
        raise InputError(f"none of the {len(recs)} records has an emotion this vector set knows")
    kept = [r for r in recs if _label_of(vs, r) in vs.names]
    ids, offsets = encode_with_offsets(lm.tokenizer, texts, context_length(lm))
    view, rows = _pooling_view(vs, lm, kept, labels, ids, offsets, skip)
    scores, y = _project_rows(vs, lm, [ids[i] for i in rows], view, layer)
    base = full_report(vs, lm, scores, y, layer=layer)
    assert base.accuracy is not None and base.n is not None  # scores were given
    k = round(base.accuracy * base.n)
    return TransferReport.model_validate(
        {
            **base.model_dump(exclude_unset=True),
            "accuracy_ci": wilson(k, base.n),
            "interval": "95% Wilson score interval over the evaluated records",
            "skipped": skipped,
            "n_skipped_short": len(kept) - len(rows),
            "skip": vs.meta.skip if skip is None else skip,
            "n_input": len(recs),
            **_baselines(vs, [texts[i] for i in rows], y, scores, lexical_train),
            **_overlap([kept[i] for i in rows], train_ids),
        }
    )


def _pooling_view(
    vs: VectorSet,
    lm: LoadedModel,
    kept: list[Any],
    labels: list[int],
    ids: list[list[int]],
    offsets: Any,
    skip: int | None,
) -> tuple[View, list[int]]:
    """Where each record is pooled, the way the set was fitted (speaker turns for a speaker
    set, else the token window from ``skip``), restricted to the usable records, whose indices
    are returned with it; none usable is an input error."""
    from emocurate.vectors.pooling import View, pool_windows, turn_token_ranges

    if vs.meta.kind in ("speaker_human", "speaker_assistant"):
        speaker = vs.meta.kind.split("_", 1)[1]
        ranges = [
            turn_token_ranges(lm.tokenizer, d, ids[i])[speaker]
            if isinstance(d, Dialogue)
            else [(0, len(ids[i]))]
            for i, d in enumerate(kept)
        ]
        usable = [bool(r) for r in ranges]
        view = View(kind=vs.meta.kind, names=vs.names, labels=labels, ranges=ranges)
    else:
        short: Literal["skip", "clip"] = "clip" if vs.meta.short == "clip" else "skip"
        win = pool_windows(
            lm.tokenizer,
            kept,
            ids,
            offsets,
            skip=vs.meta.skip if skip is None else skip,
            short=short,
            last=vs.meta.pooling == "last token",
        )
        usable = win.usable(ids)
        view = View(kind=vs.meta.kind, names=vs.names, labels=labels, starts=win.starts)
    rows = [i for i, u in enumerate(usable) if u]
    if not rows:
        raise InputError(
            f"none of the {len(kept)} records has a token in the pooling window "
            f"(from token {vs.meta.skip if skip is None else skip}, after the prompt's opening); "
            "lower --skip"
        )
    view = View(
        kind=view.kind,
        names=view.names,
        labels=[view.labels[i] for i in rows],
        starts=None if view.starts is None else [view.starts[i] for i in rows],
        ranges=None if view.ranges is None else [view.ranges[i] for i in rows],
    )
    return view, rows


def _project_rows(
    vs: VectorSet, lm: LoadedModel, ids: list[list[int]], view: View, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The set's z-scored projections of the pooled records at ``layer``, and their labels."""
    from emocurate.vectors.pooling import stream_pooled

    chunks: list[torch.Tensor] = []
    gold: list[torch.Tensor] = []

    def on_pooled(
        v: View, indices: list[int], valid: torch.Tensor, pooled: dict[int, torch.Tensor]
    ) -> None:
        chunks.append(vs.project(pooled[layer][valid], layer).cpu())
        gold.append(torch.tensor([v.labels[i] for i in indices])[valid.cpu()])

    stream_pooled(lm, ids, [view], [layer], batch_tokens=8192, on_pooled=on_pooled)
    return torch.cat(chunks), torch.cat(gold)


def _baselines(
    vs: VectorSet,
    evaluated_texts: list[str],
    y: torch.Tensor,
    scores: torch.Tensor,
    lexical_train: tuple[list[str], list[str]] | None,
) -> dict[str, Any]:
    """The majority baseline and the lexical one (with the paired comparison to the vectors),
    as the :class:`TransferReport` fields they fill (a lexical part not measured is absent)."""
    y_list = [int(v) for v in y.tolist()]
    counts = [y_list.count(e) for e in range(len(vs.names))]
    pred = scores.argmax(1).tolist()
    lexical = lexical_on(
        evaluated_texts,
        y_list,
        vs.names,
        [int(p) == g for p, g in zip(pred, y_list, strict=True)],
        lexical_train,
    )
    return {
        "majority": max(counts) / len(y_list),
        "majority_label": vs.names[counts.index(max(counts))],
        **lexical.model_dump(exclude_unset=True),
    }


def _overlap(
    evaluated: list[Any], train_ids: tuple[set[str], set[str]] | None
) -> dict[str, int | str | None]:
    """``n_overlap`` and ``overlap_warning``: evaluated records the set was fitted on (same
    text; ids alone may repeat across datasets); both ``None`` without ``train_ids``."""
    from emocurate.vectors.pooling import text_hash

    if train_ids is None:
        return {"n_overlap": None, "overlap_warning": None}
    _, fitted_hashes = train_ids
    overlap = sum(text_hash(r.text) in fitted_hashes for r in evaluated)
    warning = (
        f"{overlap} of {len(evaluated)} evaluated records were used to fit these vectors "
        "(same text as a record in train_ids.json): the accuracy is not held-out"
        if overlap
        else None
    )
    return {"n_overlap": overlap, "overlap_warning": warning}
