"""Probe: find likely label errors from out-of-sample predictions (confident learning).

A story labelled "guilty" that reads as "sad" looks, to a model, like the sad stories. The
probe validator turns each labelled text into features, either the pooled residual-stream
activations of an open model (the embedded ``stories260K`` by default, captured with
:func:`emocurate.vectors.capture.pooled_activations`) or TF-IDF text features
(``model="tfidf"``), and fits a logistic-regression probe with stratified k-fold
``cross_val_predict(method="predict_proba")``, so every text is scored by a probe that never
saw it. The out-of-sample probabilities and the given labels go to
``cleanlab.filter.find_label_issues`` (confident learning, Northcutt et al. 2021), which flags
texts whose given label is unlikely compared to the per-class noise it estimates; the verdict
carries the suggested label (the probe's top class) and cleanlab's label-quality score
(self-confidence: the probability of the given label; low means suspicious).

Emotions with fewer than ``min_per_class`` texts cannot be cross-validated and are left out
(their records pass with a note). Dialogues contribute one text per speaker; a dialogue is
flagged when either speaker's label is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from emocurate.configs import ProbeConfig
from emocurate.records import AnyRecord, Model, Verdict
from emocurate.taxonomy import Taxonomy
from emocurate.validators.base import LabelItem, keep, label_items, reject


class ProbeResult(Model):
    """Out-of-sample probe output for a list of texts."""

    classes: list[str]
    labels: list[int]
    pred_probs: list[list[float]]
    issues: list[bool]
    quality: list[float]


def featurize(texts: Sequence[str], cfg: ProbeConfig) -> np.ndarray:
    """Features for each text: concatenated pooled activations, or TF-IDF."""
    if cfg.model == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50000)
        try:
            return vec.fit_transform(list(texts)).toarray().astype(np.float32)
        except ValueError:  # vocabulary empty with min_df=2 on tiny sets
            return TfidfVectorizer(sublinear_tf=True).fit_transform(list(texts)).toarray()
    from emocurate.vectors.capture import pooled_activations
    from emocurate.vectors.models import default_layer, load_model

    lm = load_model(cfg.model, device=cfg.device)
    layers = cfg.layers
    if layers is None:
        layers = list(range(lm.n_layers)) if lm.n_layers <= 8 else [default_layer(lm.n_layers)]
    acts = pooled_activations(lm, list(texts), layers, skip=cfg.skip, batch_tokens=cfg.batch_tokens)
    return np.concatenate([acts[layer].numpy() for layer in layers], axis=1)


def out_of_sample(features: np.ndarray, labels: Sequence[str], cfg: ProbeConfig) -> ProbeResult:
    """Cross-validated probabilities and cleanlab's label issues for ``labels``."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[lab] for lab in labels])
    folds = min(cfg.folds, int(np.bincount(y).min()))
    model: Any
    if cfg.C is None:
        inner = min(3, max(2, int(np.bincount(y).min() * (folds - 1) // folds)))
        model = LogisticRegressionCV(
            Cs=[0.01, 0.1, 1.0], cv=inner, max_iter=1000, scoring="neg_log_loss", **_sklearn_quiet()
        )
    else:
        model = LogisticRegression(C=cfg.C, max_iter=1000)
    clf = make_pipeline(StandardScaler(), model)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    probs = cross_val_predict(clf, features, y, cv=cv, method="predict_proba")
    # n_jobs=1: cleanlab otherwise forks a multiprocessing pool, and a fork in a process that
    # runs threads (torch's, the CLI's signal and prefetch threads) can deadlock the child on a
    # lock held at the fork (seen in the test suite). The data here is small; one process is fast.
    issues = find_label_issues(y, probs, filter_by=cfg.filter_by, n_jobs=1)
    quality = get_label_quality_scores(y, probs)
    return ProbeResult(
        classes=classes,
        labels=y.tolist(),
        pred_probs=probs.tolist(),
        issues=[bool(x) for x in issues],
        quality=[float(q) for q in quality],
    )


class ProbeValidator:
    """Flag records whose label a cross-validated probe finds unlikely (with a suggestion)."""

    name = "probe"

    def __init__(self, config: ProbeConfig | None = None, taxonomy: Taxonomy | None = None) -> None:
        self.config = config or ProbeConfig()
        self.taxonomy = taxonomy
        self.stats: dict[str, Any] = {}
        self._features: dict[str, np.ndarray] = {}
        """Features by (texts, feature settings): refitting with other labels or seeds (the
        label-noise bench) does not rerun the model."""

    def fingerprint(self) -> dict[str, Any]:
        """Settings plus the model's weights revision for local/embedded models."""
        from emocurate.vectors.sources import resolve

        rev = resolve(self.config.model).revision  # "" for a Hub id (its commit is unknown here)
        return {"config": self.config.model_dump(mode="json"), "version": 1, "revision": rev}

    def features(self, texts: list[str]) -> np.ndarray:
        """Features of ``texts`` (memoised per instance)."""
        from emocurate.records import stable_id

        cfg = self.config
        key = stable_id(cfg.model, str(cfg.layers), str(cfg.skip), *texts)
        if key not in self._features:
            self._features = {key: featurize(texts, cfg)}
        return self._features[key]

    def _label(self, emotion: str) -> str:
        return self.taxonomy.get(emotion).name if self.taxonomy is not None else emotion.lower()

    def _not_probed(self, r: AnyRecord, n_classes: int) -> Verdict:
        """Kept with a note: too few texts of its emotion (or of any two), or no label."""
        cfg = self.config
        note = (
            f"not probed: fewer than 2 emotions with at least {cfg.min_per_class} texts"
            if n_classes < 2
            else f"not probed: its emotion has fewer than {cfg.min_per_class} texts"
        )
        return (
            keep(r, self.name, note=note)
            if label_items([r])
            else keep(r, self.name, note="no label to probe")
        )

    def _verdict(
        self, r: AnyRecord, found: list[tuple[LabelItem, dict[str, Any]]], informative: bool
    ) -> tuple[Verdict, bool]:
        """A probed record's verdict and whether it was flagged: a label issue rejects only
        when rejecting is on and the probe beats the majority class; else it is a flag."""
        score = min(d["quality"] for _, d in found)
        flagged = [d for _, d in found if d["issue"]]
        details: dict[str, Any] = {"items": [d for _, d in found]}
        if not flagged:
            return keep(r, self.name, score=score, **details), False
        d = flagged[0]
        who = f" ({d['role']})" if d["role"] in ("human", "assistant") else ""
        reason = (
            f"label_issue: labelled {d['given']}{who} but reads as {d['suggested']} "
            f"(p={d['p_suggested']:.2f} vs {d['p_given']:.2f})"
        )
        details["suggested"] = d["suggested"]
        if self.config.reject and informative:
            return reject(r, self.name, reason, score=score, **details), True
        if not informative:
            details["note"] = (
                "not rejected: the probe does not beat the majority "
                "class out of sample, so its flags are not evidence"
            )
        return keep(r, self.name, score=score, flag=reason, **details), True

    def check(self, records: Sequence[AnyRecord]) -> list[Verdict]:
        """One verdict per record; flagged records name the probe's suggested emotion."""
        cfg = self.config
        items = label_items(records)
        counts = Counter(self._label(it.emotion) for it in items)
        eligible = [it for it in items if counts[self._label(it.emotion)] >= cfg.min_per_class]
        n_classes = len({self._label(it.emotion) for it in eligible})
        per_record: dict[int, list[tuple[LabelItem, dict[str, Any]]]] = {}
        result: ProbeResult | None = None
        if n_classes >= 2:
            feats = self.features([it.text for it in eligible])
            result = out_of_sample(feats, [self._label(it.emotion) for it in eligible], cfg)
            per_record = _item_details(eligible, result)
        informative, p_value, acc, base = True, 0.0, 0.0, 0.0
        if result is not None:
            informative, p_value, acc, base = _informative(result, cfg.max_p_informative)
        out: list[Verdict] = []
        n_flagged = 0
        for i, r in enumerate(records):
            found = per_record.get(i)
            if not found:
                out.append(self._not_probed(r, n_classes))
                continue
            verdict, was_flagged = self._verdict(r, found, informative)
            out.append(verdict)
            n_flagged += was_flagged
        self.stats = {
            "checked": len(records),
            "probed_texts": len(eligible),
            "classes": n_classes,
            "flagged": n_flagged,
            "features": cfg.model,
        }
        if result is not None:
            self.stats.update(
                {
                    "cv_accuracy": round(acc, 4),
                    "majority_rate": round(base, 4),
                    "p_above_majority": float(f"{p_value:.3g}"),
                    "informative": informative,
                }
            )
            if not informative:
                # Said on the console, in the manifest and on the card: a validator that
                # rejected nothing because it could not learn the labels was not used.
                self.stats["used"] = False
                self.stats["not_used_reason"] = (
                    f"the probe does not beat the majority class out of sample (cv accuracy "
                    f"{acc:.3f} vs majority {base:.3f}, binomial p={p_value:.2g}); its "
                    f"{n_flagged} flags are kept as notes, nothing was rejected"
                )
        elif n_classes < 2:
            self.stats["used"] = False
            self.stats["not_used_reason"] = (
                f"fewer than 2 emotions with at least {cfg.min_per_class} texts to probe"
            )
        return out


def _item_details(
    eligible: list[LabelItem], result: ProbeResult
) -> dict[int, list[tuple[LabelItem, dict[str, Any]]]]:
    """Per record index, each probed text with its given and suggested label, their
    out-of-sample probabilities, the label quality and whether it is an issue."""
    per_record: dict[int, list[tuple[LabelItem, dict[str, Any]]]] = {}
    for k, it in enumerate(eligible):
        probs = result.pred_probs[k]
        top = int(np.argmax(probs))
        given = result.labels[k]
        per_record.setdefault(it.index, []).append(
            (
                it,
                {
                    "role": it.role,
                    "given": result.classes[given],
                    "suggested": result.classes[top],
                    "p_given": round(probs[given], 4),
                    "p_suggested": round(probs[top], 4),
                    "quality": round(result.quality[k], 4),
                    "issue": result.issues[k],
                },
            )
        )
    return per_record


def _informative(result: ProbeResult, max_p: float) -> tuple[bool, float, float, float]:
    """Whether out-of-sample accuracy beats always guessing the largest class.

    A probe that cannot learn the labels at all (a tiny model on texts it does not
    understand) makes cleanlab estimate huge noise rates and flag most rows; those flags say
    nothing about the labels, so the validator refuses to reject on them.
    """
    from scipy.stats import binomtest

    labels = np.array(result.labels)
    pred = np.argmax(np.array(result.pred_probs), axis=1)
    n = len(labels)
    correct = int((pred == labels).sum())
    base = float(np.bincount(labels).max() / n)
    p = float(binomtest(correct, n, base, alternative="greater").pvalue) if base < 1 else 1.0
    return p < max_p, p, correct / n, base


def _sklearn_quiet() -> dict[str, Any]:
    """Explicit values for LogisticRegressionCV defaults that scikit-learn 1.9 warns about."""
    import inspect

    from sklearn.linear_model import LogisticRegressionCV

    params = inspect.signature(LogisticRegressionCV).parameters
    wanted: dict[str, Any] = {"use_legacy_attributes": False, "l1_ratios": (0.0,)}
    return {k: v for k, v in wanted.items() if k in params}
