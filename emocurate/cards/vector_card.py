"""Vector card: a Hub ``README.md`` for a VectorSet folder.

Says which model and revision the vectors belong to (they are meaningless for any other), how
they were fitted (layer, hook site, pooling, method, neutral-PC denoising), what data trained
them, how well they do on held-out data, and how their geometry lines up with valence and
arousal (a PCA figure saved as ``figures/geometry.svg`` next to the card).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from emocurate import __version__
from emocurate.cards import svg
from emocurate.cards.geometry import Geometry, geometry, load_evaluation
from emocurate.cards.inputs import dataset_root, summarize_records
from emocurate.cards.metadata import load_existing, merge_body, merge_metadata, write_card
from emocurate.cards.render import render
from emocurate.io import atomic_write_bytes
from emocurate.vectors.vectorset import VectorSet

CARD = "README.md"
FIGURE = "figures/geometry.svg"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
REPO_IN_CARD = re.compile(r'load_dataset\("([\w.-]+/[\w.-]+)"')


def geometry_svg(geo: Geometry, title: str = "Emotion vectors: PC1 vs PC2") -> str:
    """The PCA scatter, points coloured by taxonomy valence (red positive, blue negative)."""
    pts = [
        svg.Point(x, y, n, geo.valence.get(n))
        for n, x, y in zip(geo.names, geo.pc1, geo.pc2, strict=True)
    ]
    ex = geo.explained + [None, None]
    x_label = "PC1" + (f" ({100 * ex[0]:.0f}% var.)" if ex[0] is not None else "") + " → valence"
    y_label = "PC2" + (f" ({100 * ex[1]:.0f}% var.)" if ex[1] is not None else "") + " → arousal"
    return svg.scatter(pts, title=title, x_label=x_label, y_label=y_label)


def _fmt_r(r: float | None) -> str:
    return "n/a" if r is None else f"{r:+.2f}"


def _eval_facts(ev: dict[str, Any]) -> list[tuple[str, Any]]:
    labels = {
        "accuracy": "held-out accuracy (top-1)",
        "top3": "held-out accuracy (top-3)",
        "top1": "held-out accuracy (top-1)",
        "chance": "chance level",
        "n_test": "held-out records",
        "layer": "evaluated layer",
        "macro_auroc": "mean AUROC",
        "auroc_mean": "mean AUROC",
        "n": "held-out records",
        "n_heldout": "held-out records",
        "n_train": "training records",
        "chosen_layer": "chosen layer",
        "layer_selection": "layer selection",
        "n_neutral_texts": "neutral texts (reference)",
        "reference_source": "reference source",
    }
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for key, val in ev.items():
        if isinstance(val, bool) or not isinstance(val, int | float | str):
            continue
        label = labels.get(key, key)
        if label not in seen and key not in ("kind", "method"):
            seen.add(label)
            out.append((label, val))
    auroc = ev.get("auroc") or ev.get("per_emotion_auroc")
    if isinstance(auroc, dict) and auroc and "mean AUROC" not in seen:
        vals = [float(v) for v in auroc.values() if isinstance(v, int | float)]
        if vals:
            out.append(("mean AUROC", sum(vals) / len(vals)))
    return out


def _sweep(ev: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    sweep = ev.get("sweep")
    if not isinstance(sweep, dict):
        return []
    rows = [(str(k), v) for k, v in sweep.items() if isinstance(v, dict)]
    return sorted(rows, key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)


def _auroc(ev: dict[str, Any]) -> list[tuple[str, float]]:
    a = ev.get("auroc") or ev.get("per_emotion_auroc")
    if not isinstance(a, dict):
        return []
    return sorted(
        ((str(k), float(v)) for k, v in a.items() if isinstance(v, int | float)),
        key=lambda kv: -kv[1],
    )


def _confused(ev: dict[str, Any], k: int = 5) -> list[tuple[str, str, int]]:
    conf = ev.get("confusion")
    labels: list[str] = []
    matrix: Any = None
    if isinstance(conf, dict):
        labels, matrix = list(conf.get("labels") or []), conf.get("matrix")
    elif isinstance(conf, list):
        matrix = conf
        labels = list(ev.get("labels") or [])
    if not isinstance(matrix, list) or not labels or len(matrix) != len(labels):
        return []
    pairs = [
        (labels[i], labels[j], int(v))
        for i, row in enumerate(matrix)
        for j, v in enumerate(row)
        if i != j and isinstance(v, int | float) and v > 0
    ]
    return sorted(pairs, key=lambda p: -p[2])[:k]


def _lens(ev: dict[str, Any], limit: int = 24) -> list[tuple[str, list[str], list[str]]]:
    lens = ev.get("logit_lens")
    out: list[tuple[str, list[str], list[str]]] = []
    if isinstance(lens, dict):
        for name, v in lens.items():
            if isinstance(v, dict):
                out.append(
                    (
                        str(name),
                        [str(t) for t in (v.get("top") or v.get("promotes") or [])][:8],
                        [str(t) for t in (v.get("bottom") or v.get("suppresses") or [])][:8],
                    )
                )
            elif isinstance(v, list):
                out.append((str(name), [str(t) for t in v][:8], []))
    elif isinstance(lens, list):
        for v in lens:
            if isinstance(v, dict) and "name" in v:
                out.append(
                    (
                        str(v["name"]),
                        [str(t) for t in v.get("top", [])][:8],
                        [str(t) for t in v.get("bottom", [])][:8],
                    )
                )
    return out[:limit]


def _training(training_dir: Path | None) -> dict[str, Any] | None:
    if training_dir is None or not training_dir.is_dir():
        return None
    root = dataset_root(training_dir)
    s = summarize_records(root)
    card = root / "README.md"
    repo = None
    if card.exists():
        m = REPO_IN_CARD.search(card.read_text("utf-8", errors="replace"))
        repo = m.group(1) if m and m.group(1) != "ORG/NAME" else None
    return {
        "label": str(training_dir),
        "name": training_dir.name
        if training_dir.name != "kept"
        else f"{training_dir.parent.name}/kept",
        "card_name": card.name,
        "n": s.n_records,
        "models": sorted(s.models),
        "prompts": sorted(s.prompts),
        "card": str(card) if card.exists() else "",
        "repo": repo,
    }


def write_vector_card(vectors_dir: str | Path, *, training_dir: str | Path | None = None) -> Path:
    """Write (or update) ``vectors_dir/README.md`` and ``figures/geometry.svg``; return the card path.

    Args:
        vectors_dir: a VectorSet folder (``vectors.safetensors`` + ``vectorset.json``).
        training_dir: the dataset the vectors were fitted on (its card is linked and summarised).
    """
    root = Path(vectors_dir)
    vs = VectorSet.load(root)
    meta = vs.meta
    ev = load_evaluation(root, vs)
    missing: list[str] = []
    if not ev:
        missing.append(
            "held-out evaluation (`meta.evaluation` is empty and there is no evaluation.json)"
        )
    geo = geometry(vs, ev)
    atomic_write_bytes(root / FIGURE, geometry_svg(geo).encode("utf-8"))
    training = _training(Path(training_dir) if training_dir else None)
    if training_dir is not None and training is None:
        missing.append(f"training data folder {training_dir} (not found)")
    lens = _lens(ev)
    if ev and not lens:
        missing.append("logit lens")
    card_path = root / CARD
    existing = load_existing(ModelCard, card_path)
    fresh_data: dict[str, Any] = {
        "tags": [
            "emocurate",
            "emotion-vectors",
            "interpretability",
            "steering",
            f"layer-{meta.default_layer}",
        ],
        "license": "apache-2.0",
    }
    if HUB_ID.match(meta.model_id) and not Path(meta.model_id).exists():
        fresh_data["base_model"] = meta.model_id
    if training and training.get("repo"):
        fresh_data["datasets"] = [training["repo"]]
    old = existing.data.to_dict() if existing is not None else {}
    merged = merge_metadata(old, ModelCardData(**fresh_data).to_dict(), owned={"base_model"})
    body = render(
        "vector_card.md.j2",
        title=f"Emotion vectors for {meta.model_id} (layer {meta.default_layer})",
        names=vs.names,
        meta=meta,
        version=__version__,
        steering=steering_summary(root, vs),
        load_path=".",
        training=training,
        eval_facts=_eval_facts(ev),
        sweep=_sweep(ev),
        auroc=_auroc(ev),
        confused=_confused(ev),
        lens=lens,
        geo=geo,
        fmt_r=_fmt_r,
        figure=FIGURE,
        missing=missing,
    )
    text = merge_body(existing.text if existing is not None else None, body)
    yaml_block = ModelCardData(**merged).to_yaml(original_order=list(merged))
    content = str(ModelCard(f"---\n{yaml_block}\n---\n\n{text.lstrip()}"))
    return write_card(card_path, content, "model")


def steering_summary(vectors_dir: Path, vs: VectorSet) -> dict[str, Any]:
    """What the card's Steering section shows: the saved ``steering.json`` when it was measured
    on this very fit, else why there is nothing to show."""
    from emocurate.vectors.steer import STEERING_FILE, load_steering, verdict_sentence

    report = load_steering(vectors_dir)
    if report is None:
        return {"status": "missing", "file": STEERING_FILE}
    if not report.matches(vs):
        return {"status": "stale", "file": STEERING_FILE, "created": report.created}
    return {
        "status": "measured",
        "file": STEERING_FILE,
        "report": report,
        "rows": [(e, verdict_sentence(e)) for e in report.emotions.values()],
        "n_pass": sum(e.verdict == "pass" for e in report.emotions.values()),
    }
