"""Label-noise bench: does the probe validator find flipped labels?

Data: the Representation Engineering emotion scenarios (``/work/shared/eval/repe_emotions``,
MIT; six emotions, ~200 second-person one-sentence scenarios each). For each seed, 20% of the
labels are flipped to a different emotion at random; the probe validator (cross-validated
logistic regression on pooled activations of the embedded stories260K model, out-of-sample
probabilities into cleanlab's ``find_label_issues``) then flags likely label errors.

Reported per feature set, mean ± sd over seeds: precision and recall of "flagged" against the
true flips, and AUROC of cleanlab's label-quality score (lower = more suspicious) for ranking
flips first. Beside it, in the same run, a random flagger that flags as many rows as the probe
did (its expected precision is the flip rate) and TF-IDF text features through the same
validator, as a reference point for what the tiny model's activations carry.

Usage: python bench/validation_label_noise.py [--seeds 5] [--data DIR]
Prints JSON and writes bench/results/validation_label_noise.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from emocurate.configs import ProbeConfig
from emocurate.records import Story
from emocurate.validators.probe import ProbeValidator

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
DEFAULT_DATA = Path("/work/shared/eval/repe_emotions")


def load_repe(folder: Path) -> list[tuple[str, str]]:
    """(text, emotion) pairs from the six single-emotion files (each a JSON list of strings)."""
    out: list[tuple[str, str]] = []
    for e in EMOTIONS:
        texts = json.loads((folder / f"{e}.json").read_text("utf-8"))
        out.extend((str(t).strip(), e) for t in texts if str(t).strip())
    return out


def flip(pairs: list[tuple[str, str]], frac: float, seed: int) -> tuple[list[str], set[int]]:
    """Labels with ``frac`` of them changed to a different emotion; and which were flipped."""
    rng = random.Random(seed)
    idx = set(rng.sample(range(len(pairs)), round(frac * len(pairs))))
    labels = [
        rng.choice([x for x in EMOTIONS if x != e]) if i in idx else e
        for i, (_, e) in enumerate(pairs)
    ]
    return labels, idx


def score(flagged: list[bool], suspicion: list[float], flips: set[int]) -> dict[str, float]:
    """Precision/recall of flags and AUROC of the suspicion score against the true flips."""
    truth = np.array([i in flips for i in range(len(flagged))])
    f = np.array(flagged)
    tp = int((f & truth).sum())
    return {
        "flagged": int(f.sum()),
        "precision": tp / max(int(f.sum()), 1),
        "recall": tp / max(int(truth.sum()), 1),
        "auroc": float(roc_auc_score(truth, suspicion)),
    }


def run_probe(
    v: ProbeValidator, texts: list[str], labels: list[str]
) -> tuple[list[bool], list[float], dict[str, Any]]:
    """Flags and suspicion (1 - label quality) from the probe validator."""
    recs = [
        Story(id=f"r{i:05d}", text=t, emotion=lab, topic="repe")
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]
    verdicts = v.check(recs)
    flagged = ["suggested" in x.details for x in verdicts]
    suspicion = [1.0 - float(x.score if x.score is not None else 1.0) for x in verdicts]
    return flagged, suspicion, dict(v.stats)


def summarize(rows: list[dict[str, float]]) -> dict[str, str | float]:
    """mean ± sd per metric."""
    out: dict[str, str | float] = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        m, s = statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
        out[k] = f"{m:.3f} ± {s:.3f}"
        out[f"{k}_mean"] = round(m, 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="number of flip seeds")
    ap.add_argument("--frac", type=float, default=0.2, help="fraction of labels flipped")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="repe_emotions folder")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "validation_label_noise.json",
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    pairs = load_repe(args.data)
    texts = [t for t, _ in pairs]
    setups = {
        "probe_stories260K": ProbeConfig(model="stories260K"),
        "probe_tfidf": ProbeConfig(model="tfidf"),
    }
    # one validator per feature set: activations are computed once and reused across seeds;
    # repe labels are not taxonomy names, so no taxonomy: labels are used as given
    validators = {k: ProbeValidator(cfg, taxonomy=None) for k, cfg in setups.items()}
    per: dict[str, list[dict[str, float]]] = {k: [] for k in [*setups, "random_flagger"]}
    extra: dict[str, list[float]] = {k: [] for k in setups}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        labels, flips = flip(pairs, args.frac, seed)
        n_flag = 0
        for name, cfg in setups.items():
            v = validators[name]
            v.config = cfg.model_copy(update={"seed": seed})
            flagged, susp, stats = run_probe(v, texts, labels)
            per[name].append(score(flagged, susp, flips))
            extra[name].append(float(stats.get("cv_accuracy", float("nan"))))
            if name == "probe_stories260K":
                n_flag = sum(flagged)
        rng = random.Random(10_000 + seed)
        rand_flag = [False] * len(texts)
        for i in rng.sample(range(len(texts)), n_flag):
            rand_flag[i] = True
        per["random_flagger"].append(score(rand_flag, [rng.random() for _ in texts], flips))
        print(
            f"seed {seed}: "
            + ", ".join(
                f"{k} P={v[-1]['precision']:.2f} R={v[-1]['recall']:.2f} AUROC={v[-1]['auroc']:.2f}"
                for k, v in per.items()
            ),
            file=sys.stderr,
        )
    result = {
        "bench": "validation_label_noise",
        "data": f"{args.data} ({len(pairs)} texts, {len(EMOTIONS)} emotions: {', '.join(EMOTIONS)})",
        "flip_fraction": args.frac,
        "seeds": args.seeds,
        "metric_note": (
            "precision/recall of records flagged by cleanlab find_label_issues vs the "
            "true flips; AUROC of 1 - label quality (self-confidence) for ranking flips; "
            "random_flagger flags as many rows as probe_stories260K, uniformly"
        ),
        "results": {k: summarize(v) for k, v in per.items()},
        "cv_accuracy_on_noisy_labels": {
            k: f"{statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:.3f}"
            for k, v in extra.items()
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "torch_threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
