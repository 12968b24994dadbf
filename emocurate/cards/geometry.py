"""Emotion geometry for cards and the report: PC1/PC2 coordinates per emotion.

The vector-fitting stage stores the geometry in ``evaluation.json``
(:class:`~emocurate.artifacts.GeometryReport`); when it does, cards show exactly those numbers.
When it does not (a set fitted without an evaluation), the coordinates are computed here from the vectors themselves (PCA of the unit
directions at the default layer, signs oriented by the taxonomy's valence and arousal), so a
card or report never lacks its main figure. Only that fallback needs the tensors, so only it
imports torch (with the vector set): a card for a set with an evaluation renders without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emocurate.artifacts import Evaluation

if TYPE_CHECKING:
    from emocurate.vectors.vectorset import VectorSet


@dataclass
class Geometry:
    """PC coordinates per emotion plus how well PC1/PC2 track valence/arousal."""

    names: list[str]
    pc1: list[float]
    pc2: list[float]
    explained: list[float] = field(default_factory=list)
    pc1_valence_r: float | None = None
    pc2_arousal_r: float | None = None
    source: str = "evaluation"
    valence: dict[str, float] = field(default_factory=dict)


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation, ``None`` when undefined (fewer than 3 points or a constant)."""
    if len(a) != len(b) or len(a) < 3:
        return None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    sa = math.sqrt(sum((x - ma) ** 2 for x in a))
    sb = math.sqrt(sum((y - mb) ** 2 for y in b))
    if sa == 0 or sb == 0:
        return None
    return sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True)) / (sa * sb)


def taxonomy_axes(names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Valence and arousal of the names the taxonomy knows (empty when it is unavailable)."""
    val: dict[str, float] = {}
    aro: dict[str, float] = {}
    try:
        from emocurate.taxonomy import load_taxonomy

        tax = load_taxonomy()
    except Exception:  # taxonomy data missing or invalid: geometry still renders, uncoloured
        return val, aro
    for n in names:
        try:
            e = tax.get(n)
        except Exception:
            continue
        val[n], aro[n] = e.valence, e.arousal
    return val, aro


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def from_evaluation(ev: Evaluation | None) -> Geometry | None:
    """The geometry the fitting stage stored in ``evaluation.json`` (None when it has none)."""
    geo = ev.geometry if ev is not None else None
    if geo is None or not geo.coords:
        return None
    names = list(geo.coords)
    val, _ = taxonomy_axes(names)
    return Geometry(
        names=names,
        pc1=[float(geo.coords[n][0]) for n in names],
        pc2=[float(geo.coords[n][1]) for n in names],
        explained=[float(x) for x in geo.variance_explained][:2],
        pc1_valence_r=geo.pc1_valence_r,
        pc2_arousal_r=geo.pc2_arousal_r,
        source="evaluation",
        valence=val,
    )


def from_vectors(vs: VectorSet, layer: int | None = None) -> Geometry:
    """PCA of the unit vectors at ``layer``; PC1 oriented to valence, PC2 to arousal."""
    import torch

    u = vs.unit(layer).double()
    names = list(vs.names)
    centered = u - u.mean(0, keepdim=True)
    if centered.shape[0] < 2:
        return Geometry(
            names=names, pc1=[0.0] * len(names), pc2=[0.0] * len(names), source="vectors"
        )
    _, s, vh = torch.linalg.svd(centered, full_matrices=False)
    coords = (
        centered @ vh[:2].T
        if vh.shape[0] >= 2
        else torch.cat([centered @ vh[:1].T, torch.zeros(len(names), 1, dtype=u.dtype)], 1)
    )
    var = s**2
    explained = (var[:2] / var.sum()).tolist() if float(var.sum()) > 0 else []
    pc1, pc2 = coords[:, 0].tolist(), coords[:, 1].tolist()
    val, aro = taxonomy_axes(names)
    r1 = pearson(
        [pc1[i] for i, n in enumerate(names) if n in val], [val[n] for n in names if n in val]
    )
    if r1 is not None and r1 < 0:
        pc1, r1 = [-x for x in pc1], -r1
    r2 = pearson(
        [pc2[i] for i, n in enumerate(names) if n in aro], [aro[n] for n in names if n in aro]
    )
    if r2 is not None and r2 < 0:
        pc2, r2 = [-x for x in pc2], -r2
    return Geometry(
        names=names,
        pc1=pc1,
        pc2=pc2,
        explained=explained,
        pc1_valence_r=r1,
        pc2_arousal_r=r2,
        source="vectors",
        valence=val,
    )


def geometry(vectors_dir: str | Path, evaluation: Evaluation | None = None) -> Geometry:
    """The stored geometry when the set has an evaluation, else one computed from the vectors
    of the set in ``vectors_dir`` (loaded only then)."""
    stored = from_evaluation(evaluation)
    if stored is not None:
        return stored
    from emocurate.vectors.vectorset import VectorSet

    return from_vectors(VectorSet.load(vectors_dir))
