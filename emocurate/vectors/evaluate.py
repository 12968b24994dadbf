"""Evidence that the vectors mean what their names say.

- Classification: held-out nearest-vector accuracy (argmax of z-scored projections, the same
  scores the corpus scorer uses), top-3, confusion matrix, per-emotion one-vs-rest AUROC.
- Geometry: PCA of the vectors (centred over emotions), variance explained, PC1/PC2 coordinates
  per emotion and their correlation with the taxonomy's valence and arousal (PC signs are fixed
  so PC1 correlates positively with valence and PC2 with arousal).
- Logit lens: the tokens each vector most promotes and suppresses through the final norm's
  gain and the unembedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from emocurate.errors import InputError
from emocurate.records import Dialogue, Story
from emocurate.vectors.capture import context_length, encode
from emocurate.vectors.models import LoadedModel, final_norm, unembedding
from emocurate.vectors.vectorset import VectorSet


def classification_metrics(
    scores: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, top-3, confusion matrix and per-emotion AUROC of ``scores [n, E]`` vs ``labels [n]``."""
    from sklearn.metrics import roc_auc_score

    n, n_e = scores.shape
    if n == 0:
        return {
            "n": 0,
            "accuracy": 0.0,
            "top3": 0.0,
            "chance": 1.0 / max(n_e, 1),
            "auroc_mean": 0.0,
            "auroc": {},
            "confusion": [],
            "labels": list(names),
        }
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
    return {
        "n": int(n),
        "accuracy": acc,
        "top3": top3,
        "chance": 1.0 / n_e,
        "auroc_mean": float(sum(auroc.values()) / len(auroc)) if auroc else 0.0,
        "auroc": auroc,
        "confusion": confusion.tolist(),
        "labels": list(names),
    }


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


def geometry(vectors: torch.Tensor, names: Sequence[str]) -> dict[str, Any]:
    """PCA of the emotion vectors and its agreement with the taxonomy's valence/arousal."""
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
) -> dict[str, dict[str, list[str]]]:
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
    out: dict[str, dict[str, list[str]]] = {}
    for i, name in enumerate(names):
        top = logits[i].topk(min(k, logits.shape[1])).indices.tolist()
        bottom = (-logits[i]).topk(min(k, logits.shape[1])).indices.tolist()
        out[name] = {
            "top": [lm.tokenizer.decode([t]) for t in top],
            "bottom": [lm.tokenizer.decode([t]) for t in bottom],
        }
    return out


def full_report(
    vs: VectorSet,
    lm: LoadedModel | None,
    scores: torch.Tensor | None,
    labels: torch.Tensor | None,
    *,
    layer: int | None = None,
    k: int = 10,
) -> dict[str, Any]:
    """Classification (when scores are given), geometry and logit lens at one layer."""
    layer = vs.layer_or_default(layer)
    report: dict[str, Any] = {"layer": layer, "kind": vs.meta.kind, "method": vs.meta.method}
    if scores is not None and labels is not None:
        report.update(classification_metrics(scores, labels, vs.names))
    report["geometry"] = geometry(vs.vectors[layer], vs.names)
    if lm is not None:
        report["logit_lens"] = logit_lens(lm, vs.vectors[layer], vs.names, k)
    return report


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
    vs: VectorSet, lm: LoadedModel, records: list[Story], layer: int | None = None
) -> dict[str, Any]:
    """Evaluate a VectorSet on labelled records (held-out stories, or dialogues for speaker sets).

    Pools each record the way the set was fitted (speaker sets pool over that speaker's turns),
    scores it with the set's z-scored projections, and reports classification metrics, geometry
    and the logit lens. Records whose emotion the set lacks are counted in ``skipped``.
    """
    from emocurate.vectors.fit import View, stream_pooled, turn_token_ranges

    layer = vs.layer_or_default(layer)
    recs: list[Any] = list(records)
    texts, labels, skipped = _labelled_texts(vs, recs)
    if not texts:
        raise InputError(f"none of the {len(recs)} records has an emotion this vector set knows")
    kept = [r for r in recs if _label_of(vs, r) in vs.names]
    ids = encode(lm.tokenizer, texts, context_length(lm))
    ranges = None
    if vs.meta.kind in ("speaker_human", "speaker_assistant"):
        speaker = vs.meta.kind.split("_", 1)[1]
        ranges = [
            turn_token_ranges(lm.tokenizer, d, ids[i])[speaker]
            if isinstance(d, Dialogue)
            else [(0, len(ids[i]))]
            for i, d in enumerate(kept)
        ]
    view = View(kind=vs.meta.kind, names=vs.names, labels=labels, ranges=ranges)
    chunks: list[torch.Tensor] = []
    gold: list[torch.Tensor] = []

    def on_pooled(
        v: View, indices: list[int], valid: torch.Tensor, pooled: dict[int, torch.Tensor]
    ) -> None:
        chunks.append(vs.project(pooled[layer][valid], layer).cpu())
        gold.append(torch.tensor([v.labels[i] for i in indices])[valid.cpu()])

    stream_pooled(
        lm,
        ids,
        [view],
        [layer],
        skip=vs.meta.skip,
        batch_tokens=8192,
        on_pooled=on_pooled,
        last=vs.meta.pooling == "last token",
    )
    report = full_report(vs, lm, torch.cat(chunks), torch.cat(gold), layer=layer)
    report["skipped"] = skipped
    return report
