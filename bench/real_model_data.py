"""Data and cached activations for ``bench/real_model.py`` (SmolLM2-135M-Instruct, CPU).

Evaluation data comes from ``/work/shared/eval`` (external, never shipped): GoEmotions dev and
train (Reddit, multi-label, 27 emotions) mapped to Ekman's six with the GoEmotions authors'
grouping, XED English subtitles (Plutchik) mapped to the same six; single-label rows only.
Fitting data is the bundled scenarios (``bundled:scenarios``). Pooled activations (mean over
every token but the first, at all layers) and per-layer token moments are cached as ``.npz``
(never pickle) under ``--cache`` so reruns are cheap.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

EVAL = Path("/work/shared/eval")
SIX = ["angry", "disgusted", "afraid", "happy", "sad", "surprised"]
"""The scenarios' six emotions in taxonomy names (the vector set's order is the taxonomy's)."""
EKMAN = {  # GoEmotions' ekman_mapping.json (google-research/goemotions), in taxonomy names
    "angry": ["anger", "annoyance", "disapproval"],
    "disgusted": ["disgust"],
    "afraid": ["fear", "nervousness"],
    "happy": [
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ],
    "sad": ["sadness", "disappointment", "embarrassment", "grief", "remorse"],
    "surprised": ["surprise", "realization", "confusion", "curiosity"],
}
XED = {1: "angry", 3: "disgusted", 4: "afraid", 5: "happy", 6: "sad", 7: "surprised"}
"""XED's Plutchik ids (1 anger, 2 anticipation, 3 disgust, 4 fear, 5 joy, 6 sadness,
7 surprise, 8 trust) -> the six; anticipation and trust have no Ekman counterpart."""


def goemotions(split: str, cap: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Single-Ekman-label rows of GoEmotions ``split`` (dev/train), at most ``cap`` (seeded)."""
    names = (EVAL / "goemotions" / "original_labels.txt").read_text().split()
    to_six = {src: six for six, srcs in EKMAN.items() for src in srcs}
    rows = []
    with (EVAL / "goemotions" / f"original_{split}.tsv").open(encoding="utf-8") as fh:
        for text, labels, rid in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            six = {to_six.get(names[int(x)]) for x in labels.split(",")}
            if len(six) == 1 and None not in six:
                rows.append({"id": f"goemo-{rid}", "text": text, "label": six.pop()})
    return _cap(rows, cap, seed)


def xed(cap: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Single-label XED English lines among the six, at most ``cap`` (seeded)."""
    rows = []
    with (EVAL / "xed" / "en-annotated.tsv").open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            text, _, labels = line.rstrip("\n").rpartition("\t")
            ids = {int(x) for x in labels.split(",") if x.strip().isdigit()}
            if len(ids) == 1 and next(iter(ids)) in XED and len(text.split()) >= 3:
                rows.append({"id": f"xed-{i}", "text": text.strip(), "label": XED[ids.pop()]})
    return _cap(rows, cap, seed)


def _cap(rows: list[dict[str, Any]], cap: int | None, seed: int) -> list[dict[str, Any]]:
    if cap is None or len(rows) <= cap:
        return rows
    return sorted(random.Random(seed).sample(rows, cap), key=lambda r: r["id"])


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def pooled_all_layers(lm: Any, texts: list[str], batch_tokens: int = 4096) -> np.ndarray:
    """``[n, layers, hidden]`` float32: mean over every token but the first (an attention sink
    whether or not the tokenizer adds BOS), each layer's decoder-block output."""
    import torch

    from emocurate.vectors.capture import encode, iter_hidden

    ids = encode(lm.tokenizer, texts, 512)
    layers = list(range(lm.n_layers))
    out = np.zeros((len(texts), lm.n_layers, lm.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for batch, acts in iter_hidden(lm, ids, layers, batch_tokens=batch_tokens):
            for r, i in enumerate(batch.indices):
                sl = batch.token_slice(r)
                start = sl.start + (1 if batch.lengths[r] > 1 else 0)
                for layer in layers:
                    out[i, layer] = acts[layer][r, start : sl.stop].float().mean(0).numpy()
    return out


def token_moments(lm: Any, texts: list[str], batch_tokens: int = 4096) -> dict[str, np.ndarray]:
    """Per-layer mean ``[L, d]`` and covariance ``[L, d, d]`` of every token but the first."""
    import torch

    from emocurate.vectors.capture import encode, iter_hidden

    ids = encode(lm.tokenizer, texts, 512)
    n_l, d = lm.n_layers, lm.hidden_size
    s1 = np.zeros((n_l, d))
    s2 = np.zeros((n_l, d, d))
    count = 0
    with torch.inference_mode():
        for batch, acts in iter_hidden(lm, ids, list(range(n_l)), batch_tokens=batch_tokens):
            rows = [
                (r, batch.token_slice(r)) for r in range(len(batch.indices)) if batch.lengths[r] > 1
            ]
            count += sum(sl.stop - sl.start - 1 for _, sl in rows)
            for layer in range(n_l):
                h = torch.cat([acts[layer][r, sl.start + 1 : sl.stop] for r, sl in rows]).double()
                s1[layer] += h.sum(0).numpy()
                s2[layer] += (h.T @ h).numpy()
    mean = s1 / count
    cov = s2 / count - np.einsum("ld,le->lde", mean, mean)
    return {
        "mean": mean.astype(np.float32),
        "cov": cov.astype(np.float32),
        "count": np.array(count),
    }


def cached(path: Path, make: Any) -> dict[str, np.ndarray]:
    """``np.load`` of ``path`` if present, else ``make()`` saved there (``.npz``, no pickle)."""
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    data = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data
