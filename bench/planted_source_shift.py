"""Why the planted bench's off-reference neutral documents fire: the distress composite of text
from another source has another distribution, whichever way the directions are fitted.

On the planted model of ``bench/planted_truth.py`` (same seed, same training stories and
family-A neutral reference), token activations at the probe layer (2) give five direction
variants: ``md`` (mean difference), ``md_pc50`` (the fit's recipe: top neutral PCs covering 50%
of the variance projected out), ``lda_n`` (neutral covariance whitened, shrinkage 0.1 / 0.01),
``lda_nw`` (neutral + within-class covariance), ``lda_w`` (within-class only). For each, the
smoothed (9-token) distress composite (mean of afraid and desperate, z-scored on the reference)
is measured on fresh family-A and family-B neutral texts and on marked (planted) texts of both
families, in units of the family-A composite's sd: ``shift`` (B mean - A mean), ``sdr`` (B sd / A
sd), ``sigA``/``sigB`` (mean over marked texts), ``maxA``/``maxB`` (mean per-document maximum).

    python bench/planted_source_shift.py --seeds 1 4 > bench/results/planted_source_shift.json
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import planted_truth as pt  # noqa: E402

from emocurate.corpus.regulation import smooth  # noqa: E402
from emocurate.vectors.capture import token_activations  # noqa: E402
from emocurate.vectors.models import load_model  # noqa: E402

LAYER = 2


def acts(lm: Any, texts: list[str]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    for i, _ids, h in token_activations(lm, texts, LAYER):
        out[i] = h[1:]  # the BOS token is never scored
    return out


def variants(tr: list[torch.Tensor], lab: list[int], neu: torch.Tensor) -> dict[str, torch.Tensor]:
    mus = torch.stack(
        [torch.cat([t for t, y in zip(tr, lab, strict=True) if y == e]).mean(0) for e in range(5)]
    )
    d = mus - mus.mean(0)
    within = torch.cat([t - mus[y] for t, y in zip(tr, lab, strict=True)])
    cn, cw = torch.cov(neu.T), torch.cov(within.T)
    ev, u = torch.linalg.eigh(cn)
    ev, u = ev.flip(0), u.flip(1)
    k = int((ev.cumsum(0) / ev.sum() < 0.5).sum()) + 1
    proj = torch.eye(d.shape[1]) - u[:, :k] @ u[:, :k].T

    def lda(c: torch.Tensor, lam: float) -> torch.Tensor:
        eye = torch.eye(c.shape[0])
        return torch.linalg.solve(c + lam * c.trace() / c.shape[0] * eye, d.T).T

    return {
        "md": d,
        "md_pc50": d @ proj,
        "lda_n_0.1": lda(cn, 0.1),
        "lda_n_0.01": lda(cn, 0.01),
        "lda_nw_0.1": lda(cn + cw, 0.1),
        "lda_w_0.1": lda(cw, 0.1),
    }


def composite(
    hs: list[torch.Tensor], v: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor
) -> list[np.ndarray]:
    """Smoothed distress composite per text: afraid and desperate (``NAMES[0:2]``), z-scored."""
    z = [((h @ v.T - mu) / sd)[:, [0, 1]].numpy().astype(np.float64) for h in hs]
    return [smooth(x, 9).mean(1) for x in z]


def run(seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp())
    pt.plant_model(tmp / "m", 4.0, seed)
    lm = load_model(str(tmp / "m"))
    train = pt.training_stories(rng, 30)
    ref = pt.neutral_reference(rng, 600)
    r2 = random.Random(seed + 100)
    fam_a = [pt.filler(r2, 12, "A") for _ in range(150)]
    fam_b = [pt.filler(r2, 12, "B") for _ in range(150)]
    marked = {f: [pt.mark(pt.filler(r2, 6, f), m) for m in "[%" for _ in range(30)] for f in "AB"}
    tr = acts(lm, [t["text"] for t in train])
    lab = [pt.NAMES.index(t["emotion"]) for t in train]
    neu = torch.cat(acts(lm, ref))
    h_a, h_b = acts(lm, fam_a), acts(lm, fam_b)
    m_a, m_b = acts(lm, marked["A"]), acts(lm, marked["B"])
    out = {}
    for name, v in variants(tr, lab, neu).items():
        v = torch.nn.functional.normalize(v, dim=1)
        pr = neu @ v.T
        mu, sd = pr.mean(0), pr.std(0)

        comp = functools.partial(composite, v=v, mu=mu, sd=sd)
        a, b = comp(h_a), comp(h_b)
        sa = np.concatenate(a).std()
        out[name] = {
            "shift": round(float((np.concatenate(b).mean() - np.concatenate(a).mean()) / sa), 2),
            "sdr": round(float(np.concatenate(b).std() / sa), 2),
            "sigA": round(float(np.concatenate(comp(m_a)).mean() / sa), 1),
            "sigB": round(float(np.concatenate(comp(m_b)).mean() / sa), 1),
            "maxA": round(float(np.mean([c.max() for c in a]) / sa), 2),
            "maxB": round(float(np.mean([c.max() for c in b]) / sa), 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    torch.manual_seed(0)
    res = {str(s): run(s) for s in args.seeds}
    print(json.dumps({"bench": "planted_source_shift", "seeds": res}, indent=1))


if __name__ == "__main__":
    main()
