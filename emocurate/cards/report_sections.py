"""The decision sections of the report: evaluation, thresholds, curation.

Each reads one stage's typed artifact (``Evaluation``, ``SteeringReport``, ``Calibration``, the
curate manifest) and returns plain values for the template, so a curator sees, next to every
figure, the baseline it must beat and the threshold that decides a flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emocurate.artifacts import CurateManifest, ScoreManifest
from emocurate.cards.scores import DocRow

# metric column -> the calibrated threshold that decides its flag (MetricConfig field)
THRESHOLD_OF_METRIC = {
    "distress_max": ("threshold", "distress_episode and what derives from an episode"),
    "volatility": ("volatility_line", "high_volatility"),
    "arousal_max": ("arousal_high", "mirroring (dialogues)"),
    "regulation_min": ("regulation_threshold", "unhealthy_regulation"),
}
LOWER_IS_FLAGGED = {"regulation_min"}


def with_lines(th: dict[str, float]) -> dict[str, float]:
    """``th`` plus ``volatility_line``: the symmetric ``volatility`` column above which a
    document is surely flagged ``high_volatility`` (its two sides may have different levels,
    ``volatility_high`` and ``volatility_low``; no document flagged means every one is below)."""
    out = dict(th)
    if "volatility_high" in th:
        low = th.get("volatility_low")
        out["volatility_line"] = max(
            th["volatility_high"], th["volatility_high"] if low is None else low
        )
    return out


@dataclass
class Thresholds:
    """The flag thresholds the scores were made with, and where they came from."""

    source: str  # one sentence: calibrated at rate r on N reference tokens, or fixed z units
    per_metric: dict[str, float]  # metric column -> threshold (for a reference-length document)
    note: str = ""
    not_reached: list[str] = field(default_factory=list)


def thresholds(man: ScoreManifest, docs: list[DocRow]) -> Thresholds | None:
    """Thresholds from the scoring run: calibrated (rate + calibration.json) or fixed z units."""
    cfg = man.config
    vdir = man.vectors.dir
    per: dict[str, float] = {}
    note = ""
    if cfg.flags_off:
        return Thresholds(source=man.flags_note or "flags off (not calibrated)", per_metric={})
    # The calibration the scores were made with is in their manifest (a pipeline keeps its
    # calibration.json in its own stage folder, not in the vectors folder).
    used = cfg.calibration
    if not cfg.z_thresholds and (used or (vdir and (Path(vdir) / "calibration.json").exists())):
        from emocurate.corpus.calibration import load_calibration

        cal = used if used else load_calibration(vdir)
        rate = cfg.fpr
        th = with_lines(cal.thresholds(rate))
        source = (
            f"calibrated: each flag family fires on {100 * rate:g}% of reference-like documents "
            f"of any length (high_volatility and the kinds derived from an episode: at most), "
            f"measured at lengths of 16 tokens and up on {cal.n_tokens} tokens of "
            f"{', '.join(cal.reference)}"
        )
        note = (
            f"Lines mark the thresholds for a document of {cal.mean_tokens} tokens (the "
            "reference's mean); each document is judged at its own length (longer ones get "
            "stricter thresholds), so the rate per document holds at every length."
        )

        def doc_th(d: DocRow, key: str) -> float | None:
            return with_lines(cal.thresholds(rate, d.n_tokens)).get(key)
    else:
        fixed = cfg.metrics.model_dump()
        th = with_lines({k: float(v) for k, v in fixed.items() if isinstance(v, int | float)})
        source = "fixed z-unit thresholds (--z-threshold), not calibrated on a reference"

        def doc_th(d: DocRow, key: str) -> float | None:
            return th.get(key)

    for metric, (key, _) in THRESHOLD_OF_METRIC.items():
        if key in th:
            per[metric] = float(th[key])
    warnings = [f"Warning: {x.warning}." for x in man.reference_shift if x.warning]
    note = " ".join([*warnings, note]).strip()
    out = Thresholds(source=source, per_metric=per, note=note)
    if docs and not any(d.flags for d in docs):
        out.not_reached = _closest(docs, doc_th)
    return out


def _closest(docs: list[DocRow], doc_th: Any) -> list[str]:
    """For each thresholded metric, the document that came closest to its threshold."""
    lines = []
    for metric, (key, kinds) in THRESHOLD_OF_METRIC.items():
        best: tuple[float, DocRow, float, float] | None = None
        for d in docs:
            v, t = d.metrics.get(metric), doc_th(d, key)
            if v is None or t is None:
                continue
            gap = (v - t) if metric in LOWER_IS_FLAGGED else (t - v)
            if best is None or gap < best[0]:
                best = (gap, d, float(v), float(t))
        if best is not None:
            gap, d, v, t = best
            extreme = "lowest" if metric in LOWER_IS_FLAGGED else "highest"
            if gap >= 0:
                side = "above" if metric in LOWER_IS_FLAGGED else "below"
                how = f"{side} its threshold {t:.2f}"
            else:  # past the line at one point, but the flag's other conditions did not hold
                how = (
                    f"past its threshold {t:.2f} at its peak, but not for long enough (or not "
                    "with the flag's other conditions) to fire"
                )
            lines.append(f"{metric} (decides {kinds}): {extreme} {v:.2f} in {d.doc_id}, {how}")
    return lines


def evaluation(vectors_dir: Path) -> dict[str, Any] | None:
    """Held-out accuracy with its spread and baselines, and the steering verdicts."""
    from emocurate.artifacts import load_steering, read_evaluation, read_vectorset_meta

    ev = read_evaluation(vectors_dir)
    if ev is None:
        return None
    steering = load_steering(vectors_dir)
    steer_rows = []
    if steering is not None and steering.matches(read_vectorset_meta(vectors_dir)):
        for name, e in sorted(steering.emotions.items()):
            steer_rows.append(
                {
                    "emotion": name,
                    "rho": e.projection.rho,
                    "p": e.projection.p,
                    "n": e.projection.n,
                    "words_rho": e.word_logprob.rho,
                    "verdict": e.verdict,
                }
            )
    return {
        "ev": ev,
        "steering": steer_rows,
        "steering_unit": steering.strength_unit if steering else "",
    }


def curation(man: CurateManifest) -> dict[str, Any]:
    """What each rule of the policy did, and what the guardrail decided."""
    return {
        "rows_in": man.rows_in,
        "kept": man.kept,
        "flagged": man.flagged,
        "dropped": man.dropped,
        "rules": [r.model_dump() for r in man.rules],
        "guardrail": man.guardrail.model_dump(),
        "with_text": man.with_text,
    }
