"""Analyses of ``bench/real_model.py`` on cached pooled activations (numpy, seconds per layer).

The recipe here mirrors ``emocurate.vectors.fit`` (mean difference over emotions; optional
per-dimension standardisation by the sd of the pooled fitted texts, mapped back to raw space;
optional neutral PCs covering 50% of the neutral token variance; z-scores against token
moments: neutral when used, else the fitted texts') so variants can be compared per layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

VARIANTS = {
    "raw": (0, False),
    "neutral_pcs": (0, True),
    "standardized_once": (1, False),
    "standardized_once+neutral_pcs": (1, True),
    "standardized": (2, False),
    "standardized+neutral_pcs": (2, True),
}
"""name -> (power of the per-dimension scaling, project neutral PCs). Power 1: the mean
difference of standardised rows used as a raw direction (``md / sd``: scaling before the mean
difference only); power 2: standardised rows projected on it (``md / sd**2``: scaling before
the difference and in the projection; the library's ``--standardize dims``)."""


def neutral_pcs(cov: np.ndarray, variance: float = 0.5) -> np.ndarray:
    evals, evecs = np.linalg.eigh(cov.astype(np.float64))
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]
    frac = np.cumsum(evals) / evals.sum()
    k = min(int((frac < variance).sum()) + 1, cov.shape[0] - 1)
    return evecs[:, :k]


class Recipe:
    """Directions and z-score reference at one layer, fitted on pooled rows ``x`` with ``y``."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_e: int,
        *,
        standardize: int,
        pcs: bool,
        neutral: dict[str, np.ndarray] | None,
        train_tokens: dict[str, np.ndarray],
    ) -> None:
        means = np.stack([x[y == e].mean(0) for e in range(n_e)])
        md = (means - means.mean(0)).astype(np.float64)
        scale = x.astype(np.float64).std(0) if standardize else None
        if scale is not None:
            scale = np.maximum(scale, np.median(scale[scale > 0]) * 1e-3)
        ref = neutral if (pcs and neutral is not None) else train_tokens
        w = md / scale if scale is not None else md
        if pcs and neutral is not None:
            cov = neutral["cov"].astype(np.float64)
            if scale is not None:
                cov = cov / np.outer(scale, scale)
            u = neutral_pcs(cov)
            w = w - (w @ u) @ u.T
        v = w / scale if scale is not None and standardize == 2 else w
        self.unit = v / np.linalg.norm(v, axis=1, keepdims=True)
        self.mean = self.unit @ ref["mean"].astype(np.float64)
        var = np.einsum("ed,df,ef->e", self.unit, ref["cov"].astype(np.float64), self.unit)
        self.std = np.sqrt(np.maximum(var, 1e-12))
        self.vectors = v

    def scores(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) @ self.unit.T - self.mean) / self.std


def macro_auroc(scores: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    vals = [
        roc_auc_score(y == e, scores[:, e])
        for e in range(scores.shape[1])
        if 0 < (y == e).sum() < len(y)
    ]
    return float(np.mean(vals)) if vals else float("nan")


def splits(
    y: np.ndarray, seeds: int = 5, holdout: float = 0.2
) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for s in range(seeds):
        rng = np.random.default_rng(s)
        held = []
        for e in np.unique(y):
            idx = np.flatnonzero(y == e)
            rng.shuffle(idx)
            held += idx[: int(round(len(idx) * holdout))].tolist()
        mask = np.zeros(len(y), bool)
        mask[held] = True
        out.append((np.flatnonzero(~mask), np.flatnonzero(mask)))
    return out


def t_interval(vals: list[float], n_train: int, n_held: int) -> list[float]:
    """Nadeau & Bengio corrected resampled t interval (as ``emocurate.vectors.evaluate``)."""
    from scipy.stats import t

    m, sd = float(np.mean(vals)), float(np.std(vals, ddof=1))
    half = t.ppf(0.975, len(vals) - 1) * sd * math.sqrt(1 / len(vals) + n_held / n_train)
    return [m - half, m + half]


def fisher_ci(r: float, n: int) -> list[float]:
    z, se = math.atanh(max(min(r, 0.999999), -0.999999)), 1 / math.sqrt(n - 3)
    return [math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)]


def probe(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    """Multinomial logistic probe on standardised activations: class probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    clf.fit(x_tr, y_tr)
    out = np.zeros((len(x_te), int(y_tr.max()) + 1))
    out[:, clf.classes_] = clf.predict_proba(x_te)
    return out


def tfidf(t_tr: list[str], y_tr: np.ndarray, t_te: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(sublinear_tf=True)
    clf = LogisticRegression(max_iter=3000, C=1.0).fit(vec.fit_transform(t_tr), y_tr)
    out = np.zeros((len(t_te), int(y_tr.max()) + 1))
    out[:, clf.classes_] = clf.predict_proba(vec.transform(t_te))
    return out


def cv_in_domain(
    x: np.ndarray | None, texts: list[str] | None, y: np.ndarray, folds: int = 5
) -> dict[str, float]:
    """5-fold stratified in-domain accuracy and macro-AUROC (probe on ``x`` or TF-IDF)."""
    from sklearn.model_selection import StratifiedKFold

    prob = np.zeros((len(y), int(y.max()) + 1))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y):
        if x is not None:
            prob[te] = probe(x[tr], y[tr], x[te])
        else:
            assert texts is not None
            prob[te] = tfidf([texts[i] for i in tr], y[tr], [texts[i] for i in te])
    return {"accuracy": float((prob.argmax(1) == y).mean()), "auroc": macro_auroc(prob, y)}


def wilson(k: int, n: int) -> list[float]:
    z = 1.959963984540054
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, mid - half), min(1.0, mid + half)]


def paired_boot(a: np.ndarray, b: np.ndarray, n: int = 2000) -> list[float]:
    d = a.astype(float) - b.astype(float)
    rng = np.random.default_rng(0)
    boots = d[rng.integers(0, len(d), size=(n, len(d)))].mean(1)
    return [float(v) for v in np.percentile(boots, [2.5, 97.5])]


def geometry_r(vectors: np.ndarray, val: np.ndarray, aro: np.ndarray) -> dict[str, Any]:
    x = vectors - vectors.mean(0)
    _, _, vh = np.linalg.svd(x, full_matrices=False)
    pc = x @ vh[:2].T
    r1 = abs(float(np.corrcoef(pc[:, 0], val)[0, 1]))
    r2 = abs(float(np.corrcoef(pc[:, 1], aro)[0, 1]))
    n = len(val)
    return {
        "pc1_valence_r": r1,
        "pc1_valence_ci": fisher_ci(r1, n),
        "pc2_arousal_r": r2,
        "pc2_arousal_ci": fisher_ci(r2, n),
        "n_emotions": n,
    }
