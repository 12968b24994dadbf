"""Vector card: a Hub ``README.md`` for a VectorSet folder.

Says which model and revision the vectors belong to (they are meaningless for any other), how
they were fitted (layer and how it was chosen, hook site, pooling window, method, neutral-PC
denoising), what data trained them (records left out, share naming their label), how well they
do on held-out data (accuracy ± interval over split seeds beside chance, the majority class and
a lexical baseline, read through :class:`~emocurate.artifacts.Evaluation`; one sentence
says whether they beat the lexical baseline), and how their geometry lines up with valence and
arousal (a PCA figure saved as ``figures/geometry.svg`` next to the card).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from emocurate import __version__
from emocurate.artifacts import (
    EVALUATION_FILE,
    STEERING_FILE,
    Evaluation,
    LayerMetrics,
    VectorSetMeta,
    load_steering,
    read_evaluation,
    read_transfers,
    read_vectorset_meta,
    verdict_sentence,
)
from emocurate.cards import svg
from emocurate.cards.geometry import Geometry, geometry
from emocurate.cards.inputs import dataset_root, summarize_records
from emocurate.cards.metadata import load_existing, merge_body, merge_metadata, write_card
from emocurate.cards.render import render
from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes

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
    # An axis is named after valence/arousal only together with how well it tracks it.
    n = len(geo.valence)
    x_label = "PC1" + (f" ({100 * ex[0]:.0f}% var.)" if ex[0] is not None else "")
    if geo.pc1_valence_r is not None:
        x_label += f"; r with valence {geo.pc1_valence_r:+.2f} (n={n})"
    y_label = "PC2" + (f" ({100 * ex[1]:.0f}% var.)" if ex[1] is not None else "")
    if geo.pc2_arousal_r is not None:
        y_label += f"; r with arousal {geo.pc2_arousal_r:+.2f} (n={n})"
    return svg.scatter(pts, title=title, x_label=x_label, y_label=y_label)


def _fmt_r(r: float | None) -> str:
    return "n/a" if r is None else f"{r:+.2f}"


def _fmt3(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _baselines(ev: Evaluation) -> list[tuple[str, str, str, str]]:
    """Rows of the accuracy table: what, held-out accuracy, its spread, its 95% interval."""
    if ev.accuracy is None:
        return []
    rows = []
    ci = ev.accuracy_ci or (ev.accuracy, ev.accuracy)
    rows.append(
        (
            f"emotion vectors (layer {ev.layer})",
            _fmt3(ev.accuracy),
            f"± {_fmt3(ev.accuracy_sd)}",
            f"{ci[0]:.3f} – {ci[1]:.3f}",
        )
    )
    if ev.lexical is not None:
        lo, hi = ev.lexical.ci
        rows.append(
            (
                "lexical baseline (TF-IDF + logistic regression)",
                _fmt3(ev.lexical.mean),
                f"± {ev.lexical.sd:.3f}",
                f"{lo:.3f} – {hi:.3f}",
            )
        )
    if ev.majority is not None:
        rows.append(("majority class", _fmt3(ev.majority), "", ""))
    rows.append((f"chance (1/{len(ev.labels)})", _fmt3(ev.chance), "", ""))
    return rows


def _sweep(ev: Evaluation) -> list[tuple[str, LayerMetrics]]:
    return sorted(ev.sweep.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)


def _auroc(ev: Evaluation) -> list[tuple[str, float]]:
    return sorted(ev.auroc.items(), key=lambda kv: -kv[1])


def _confused(ev: Evaluation, k: int = 5) -> list[tuple[str, str, int]]:
    labels, matrix = ev.labels, ev.confusion
    if not matrix or len(matrix) != len(labels):
        return []
    pairs = [
        (labels[i], labels[j], int(v))
        for i, row in enumerate(matrix)
        for j, v in enumerate(row)
        if i != j and v > 0
    ]
    return sorted(pairs, key=lambda p: -p[2])[:k]


def _lens(ev: Evaluation | None, limit: int = 24) -> list[tuple[str, list[str], list[str]]]:
    if ev is None:
        return []
    return [(name, v.top[:8], v.bottom[:8]) for name, v in ev.logit_lens.items()][:limit]


@dataclass(frozen=True)
class TrainingData:
    """The training data folder as the card names it (``repo``: its dataset card's Hub repo,
    when the card names one)."""

    label: str
    name: str
    card_name: str
    n: int
    models: list[str]
    prompts: list[str]
    card: str
    repo: str | None


def _training(training_dir: Path | None) -> TrainingData | None:
    if training_dir is None or not training_dir.is_dir():
        return None
    root = dataset_root(training_dir)
    s = summarize_records(root)
    card = root / "README.md"
    repo = None
    if card.exists():
        m = REPO_IN_CARD.search(card.read_text("utf-8", errors="replace"))
        repo = m.group(1) if m and m.group(1) != "ORG/NAME" else None
    return TrainingData(
        label=str(training_dir),
        name=training_dir.name
        if training_dir.name != "kept"
        else f"{training_dir.parent.name}/kept",
        card_name=card.name,
        n=s.n_records,
        models=sorted(s.models),
        prompts=sorted(s.prompts),
        card=str(card) if card.exists() else "",
        repo=repo,
    )


def _card_metadata(meta: VectorSetMeta, training: TrainingData | None) -> dict[str, Any]:
    """The card's YAML metadata this run owns: tags, licence, base model (a Hub id only) and
    the training dataset's repo when it has one."""
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
    if training and training.repo:
        fresh_data["datasets"] = [training.repo]
    return fresh_data


def write_vector_card(
    vectors_dir: str | Path,
    *,
    training_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    transfer_dir: str | Path | None = None,
) -> Path:
    """Write (or update) ``README.md`` and ``figures/geometry.svg``; return the card path.

    Args:
        vectors_dir: a VectorSet folder (``vectors.safetensors`` + ``vectorset.json``).
        training_dir: the dataset the vectors were fitted on (its card is linked and summarised).
        out_dir: where the card and its figure go (default: ``vectors_dir``). The pipeline's
            cards stage writes into its own folder; the card joins the vectors at push time.
        transfer_dir: another folder holding ``transfer/*.json`` (the pipeline's evaluate
            stage); its evaluations are listed beside those saved in the set.
    """
    root = Path(vectors_dir)
    dest = Path(out_dir) if out_dir is not None else root
    meta = read_vectorset_meta(root)
    missing: list[str] = []
    ev: Evaluation | None = None
    try:
        ev = read_evaluation(root)
    except InputError as exc:
        missing.append(f"held-out evaluation ({exc.message})")
    else:
        if ev is None:
            missing.append(f"held-out evaluation (no {EVALUATION_FILE} next to vectorset.json)")
    geo = geometry(root, ev)
    atomic_write_bytes(dest / FIGURE, geometry_svg(geo).encode("utf-8"))
    training = _training(Path(training_dir) if training_dir else None)
    if training_dir is not None and training is None:
        missing.append(f"training data folder {training_dir} (not found)")
    lens = _lens(ev)
    if ev and not lens:
        missing.append("logit lens")
    card_path = dest / CARD
    existing = load_existing(ModelCard, card_path)
    old = existing.data.to_dict() if existing is not None else {}
    fresh = ModelCardData(**_card_metadata(meta, training)).to_dict()
    merged = merge_metadata(old, fresh, owned={"base_model"})
    body = render(
        "vector_card.md.j2",
        title=f"Emotion vectors for {meta.model_id} (layer {meta.default_layer})",
        names=meta.names,
        meta=meta,
        version=__version__,
        steering=steering_summary(root, meta),
        load_path=".",
        training=training,
        ev=ev,
        baselines=_baselines(ev) if ev is not None else [],
        sweep=_sweep(ev) if ev is not None else [],
        auroc=_auroc(ev) if ev is not None else [],
        confused=_confused(ev) if ev is not None else [],
        lens=lens,
        geo=geo,
        fmt_r=_fmt_r,
        figure=FIGURE,
        missing=missing,
        transfers=read_transfers(root)
        + (read_transfers(transfer_dir) if transfer_dir is not None else []),
    )
    text = merge_body(existing.text if existing is not None else None, body)
    yaml_block = ModelCardData(**merged).to_yaml(original_order=list(merged))
    content = str(ModelCard(f"---\n{yaml_block}\n---\n\n{text.lstrip()}"))
    return write_card(card_path, content, "model")


def steering_summary(vectors_dir: Path, meta: VectorSetMeta) -> dict[str, Any]:
    """What the card's Steering section shows: the saved ``steering.json`` when it was measured
    on this very fit (the set ``meta`` describes), else why there is nothing to show."""
    report = load_steering(vectors_dir)
    if report is None:
        return {"status": "missing", "file": STEERING_FILE}
    if not report.matches(meta):
        return {"status": "stale", "file": STEERING_FILE, "created": report.created}
    return {
        "status": "measured",
        "file": STEERING_FILE,
        "report": report,
        "rows": [(e, verdict_sentence(e)) for e in report.emotions.values()],
        "n_pass": sum(e.verdict == "pass" for e in report.emotions.values()),
    }
