"""6d of ``bench/real_model.py``: steering judged by an external classifier, not the vectors.

Judge: TF-IDF + logistic regression (balanced classes) trained on GoEmotions train, single
Ekman label, mapped to the vector set's six names (never fitted on the vectors or on the
continuations). For each emotion x prompt, greedy continuations (24 tokens) at doses
``DOSES`` (fractions of the mean residual norm at the set's layer, ``emocurate steer``'s
scale); perplexity of each continuation under the unsteered model. An (emotion, prompt)
succeeds when the judge's probability of the target emotion at the strongest dose whose
perplexity is <= 2x the unsteered one is above the unsteered probability and rises with
the dose over the admissible doses (Spearman rho > 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

DOSES = (0.0, 0.1, 0.2, 0.4)
PROMPTS = (
    "Once upon a time, there was a girl named Lily. She felt",
    "Tom looked at the big box on the table. He was",
    "One day, Sam went to the park with his mom. Sam was",
    "Mia opened the door and saw her friend. She was",
    "The sun went down and the park was quiet. Everyone was",
)
MAX_NEW = 24


def judge(names: list[str]) -> Any:
    """The external classifier (a fitted sklearn pipeline) over ``names``."""
    from real_model_data import goemotions
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows = [r for r in goemotions("train", None) if r["label"] in names]
    clf = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
        LogisticRegression(max_iter=3000, C=2.0, class_weight="balanced"),
    )
    clf.fit([r["text"] for r in rows], [names.index(r["label"]) for r in rows])
    return clf


def _generate(lm: Any, prompts: list[str]) -> tuple[list[str], list[list[int]], list[list[int]]]:
    import torch

    tok = lm.tokenizer
    tok.padding_side = "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    enc = tok(list(prompts), return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = lm.model.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            do_sample=False,
            max_new_tokens=MAX_NEW,
            min_new_tokens=MAX_NEW,
            pad_token_id=pad,
        )
    width = enc["input_ids"].shape[1]
    conts = [[int(t) for t in row[width:].tolist()] for row in out]
    prompt_ids = [
        [int(t) for t, m in zip(r, mk, strict=True) if m]
        for r, mk in zip(enc["input_ids"], enc["attention_mask"], strict=True)
    ]
    return [tok.decode(c, skip_special_tokens=True) for c in conts], prompt_ids, conts


def _perplexity(lm: Any, prompt_ids: list[int], cont: list[int]) -> float:
    import torch

    ids = torch.tensor([prompt_ids + cont])
    with torch.inference_mode():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits.float()[0], -1)
    n = len(prompt_ids)
    nll = -logp[torch.arange(n - 1, n - 1 + len(cont)), torch.tensor(cont)].mean()
    return float(torch.exp(nll))


def steering(lm: Any, vs: Any) -> dict[str, Any]:
    """The emotion vectors' success share, and the same criterion for random directions
    (a control: how often the judge's target probability "rises" by chance)."""
    out = _steering(lm, vs, control=False)
    control = _steering(lm, vs, control=True)
    out["random_direction_control"] = {
        k: control[k] for k in ("success_share", "successes_per_emotion")
    }
    return out


def _steering(lm: Any, vs: Any, *, control: bool) -> dict[str, Any]:
    from contextlib import contextmanager

    import torch
    from scipy.stats import spearmanr

    from emocurate.vectors.steer import add_to_residual, steer, steering_delta

    @contextmanager
    def push(name: str, dose: float) -> Any:
        if not control:
            with steer(lm, vs, name, dose):
                yield
            return
        layer, delta = steering_delta(lm, vs, name, dose)
        gen = torch.Generator().manual_seed(vs.names.index(name))
        rand = torch.randn(delta.shape[0], generator=gen)
        with add_to_residual(lm, layer, rand / rand.norm() * delta.norm()):
            yield

    names = list(vs.names)
    clf = judge(names)
    prompts = list(PROMPTS)
    base_text, pids, base_conts = _generate(lm, prompts)
    base_ppl = [_perplexity(lm, p, c) for p, c in zip(pids, base_conts, strict=True)]
    base_prob = clf.predict_proba(base_text)
    cells: list[dict[str, Any]] = []
    for e, name in enumerate(names):
        probs = [base_prob[:, e]]
        ppls = [np.array(base_ppl)]
        texts = [base_text]
        for dose in DOSES[1:]:
            with push(name, dose):
                t, _, conts = _generate(lm, prompts)
            probs.append(clf.predict_proba(t)[:, e])
            ppls.append(np.array([_perplexity(lm, p, c) for p, c in zip(pids, conts, strict=True)]))
            texts.append(t)
        for j, prompt in enumerate(prompts):
            p = [float(x[j]) for x in probs]
            q = [float(x[j]) for x in ppls]
            ok = [k for k in range(len(DOSES)) if q[k] <= 2 * q[0]]
            top = max(ok)
            rho = (
                float(spearmanr(DOSES[: top + 1], p[: top + 1]).statistic)
                if top >= 2
                else float("nan")
            )
            rising = p[top] > p[0] and (top < 2 or rho > 0)
            cells.append(
                {
                    "emotion": name,
                    "prompt": prompt,
                    "prob": p,
                    "ppl": q,
                    "admissible_top_dose": DOSES[top],
                    "rho": rho,
                    "success": bool(top > 0 and rising),
                    "text_top": texts[top][j],
                }
            )
    share = sum(c["success"] for c in cells) / len(cells)
    per = {n: sum(c["success"] for c in cells if c["emotion"] == n) for n in names}
    return {
        "doses": list(DOSES),
        "layer": vs.meta.default_layer,
        "n_cells": len(cells),
        "success_share": share,
        "successes_per_emotion": per,
        "judge": "TF-IDF (1-2 grams) + logistic regression, balanced, GoEmotions train single Ekman label",
        "cells": cells,
    }
