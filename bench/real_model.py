"""The science of issue 17, measured on SmolLM2-135M-Instruct on CPU (prints JSON).

6a held-out accuracy on the fitting distribution (the bundled scenarios) vs the lexical
baseline, paired interval: ``emocurate fit --records bundled:scenarios --model smollm2-135m``
run as a subprocess at its defaults (plus ``--neutral bundled:neutral``).
6b transfer to human text not fitted on: ``emocurate vectors evaluate`` of that set on
GoEmotions dev (Ekman) and XED (single-label, six emotions), beside the majority class, a
logistic probe trained on the same (scenario) activations and a TF-IDF model trained on the
scenarios (same transfer), and in-domain ceilings (5-fold probe and TF-IDF on the target data).
6c geometry on the taxonomy's 171 emotions from template sentences (see ``TEMPLATES``):
PC1 vs valence, PC2 vs arousal, r with a 95% Fisher interval, per layer.
6d steering judged by an external classifier (TF-IDF logistic on GoEmotions train, Ekman):
6 emotions x 5 prompts, doses 0..max, the target's probability must rise with the dose
(Spearman rho > 0 over the doses) while perplexity (under the unsteered model) stays <= 2x.
6e per-layer profile over all 30 layers (held-out accuracy and AUROC on the scenarios,
transfer AUROC on GoEmotions, valence r) as ``docs/figures/real_model_layers.svg``.
Also: the recipe variants (plain mean-diff, neutral-PC projection, per-dimension
standardisation, both) that ``docs/vectors.md`` cites for the default.

Activations are cached as ``.npz`` under ``--cache`` (pooled: mean over every token but the
first). Usage: python bench/real_model.py [--cache DIR] [--go-cap 3354] [--xed-cap 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_model_data import (  # noqa: E402
    SIX,
    cached,
    goemotions,
    pooled_all_layers,
    token_moments,
    write_jsonl,
    xed,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "real_model.json"
FIGURE = ROOT / "docs" / "figures" / "real_model_layers.svg"
MODEL = "smollm2-135m"
TEMPLATES = [
    "I am feeling {w} right now.",
    "She felt {w} when she opened the letter.",
    "He was {w} for the rest of the day.",
    "They all seemed {w} after the meeting.",
    "Feeling {w}, I walked home slowly.",
    "My friend told me she was {w}.",
    "We were {w} when the news arrived.",
    "Honestly, I have never been so {w}.",
]
"""Template sentences for the geometry (6c): 171 emotions x 8 = 1,368 sentences in seconds on
CPU. They name the emotion word, so 6c reads the model's concept of the word in context, not
an emotion shown without naming it (generated stories would, at ~27 tok/s: hours for 171)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def activations(lm: Any, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Texts, labels and cached pooled activations of every data set, and the token moments."""
    from emocurate.taxonomy import load_taxonomy
    from emocurate.vectors.labelled import read_labelled

    scen = read_labelled("bundled:scenarios").records
    neutral = [
        json.loads(line)["text"]
        for line in (ROOT / "emocurate/data/neutral/neutral_en.jsonl").read_text().splitlines()
    ]
    names = load_taxonomy().names()
    tmpl = [(t.format(w=n), n) for n in names for t in TEMPLATES]
    sets: dict[str, tuple[list[str], list[str]]] = {
        "scenarios": ([r.text for r in scen], [r.emotion for r in scen]),
        "goemotions": tuple(
            zip(*[(r["text"], r["label"]) for r in goemotions("dev", args.go_cap)])
        ),  # type: ignore[dict-item]
        "xed": tuple(zip(*[(r["text"], r["label"]) for r in xed(args.xed_cap)])),  # type: ignore[dict-item]
        "templates": ([t for t, _ in tmpl], [n for _, n in tmpl]),
        "neutral": (neutral, ["neutral"] * len(neutral)),
    }
    out: dict[str, Any] = {}
    for name, (texts, labels) in sets.items():
        t0 = time.perf_counter()
        z = cached(
            cache / f"{name}.npz",
            lambda texts=texts: {"x": pooled_all_layers(lm, list(texts)).astype(np.float16)},
        )
        log(f"{name}: {len(texts)} texts pooled ({time.perf_counter() - t0:.0f}s)")
        out[name] = {"texts": list(texts), "labels": list(labels), "x": z["x"].astype(np.float32)}
    for name in ("neutral", "scenarios"):
        t0 = time.perf_counter()
        out[f"moments_{name}"] = cached(
            cache / f"moments_{name}.npz", lambda name=name: token_moments(lm, out[name]["texts"])
        )
        log(f"token moments of {name} ({time.perf_counter() - t0:.0f}s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/emocurate/bench_real")
    ap.add_argument("--go-cap", type=int, default=None, help="GoEmotions dev rows (default all)")
    ap.add_argument("--xed-cap", type=int, default=2000)
    ap.add_argument("--only-cache", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from emocurate.vectors.models import load_model

    lm = load_model(MODEL)
    data = activations(lm, args.cache, args)
    if args.only_cache:
        return
    print(json.dumps({"sizes": {k: len(v["texts"]) for k, v in data.items() if "texts" in v}}))


if __name__ == "__main__":
    main()
