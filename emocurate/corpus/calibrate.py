"""Calibrated flags: thresholds as quantiles of per-document statistics on a reference corpus.

A fixed threshold in z units says little: the smoothed composites live on a narrower scale than
the per-token reference they are z-scored against, so a "1.0" can be unreachable for one vector
set and noise for another. Here every flag kind has a per-document statistic ``s(doc)`` with
"flagged at threshold t iff s(doc) > t":

* ``distress`` -- the highest level at which the document has a distress episode (a run of the
  smoothed composite above the level, at least ``min_episode`` tokens long and confirmed by as
  many raw tokens; :func:`~emocurate.corpus.regulation.sustained_level`). Drives
  ``distress_episode`` and what derives from an episode (``unrecovered_distress``,
  ``unresolved_end``, ``escalating_response``).
* ``escalation`` -- the distress slope over the document (the flag also needs an episode).
* ``volatility`` -- the valence volatility.
* ``regulation`` -- the highest level below which the regulation axis has a run (negated).
* ``mirroring`` -- the level below which some human turn is mirrored by the answer
  (:func:`mirroring_level`; dialogues only; the token-level arousal when the reference has too
  few dialogues).

:func:`calibrate` scores a reference corpus (neutral text by default), cuts its documents into
chunks of ``chunk_tokens`` tokens (so a statistic is a maximum over a known length) and stores
the distribution of each statistic in ``calibration.json`` in the vector-set folder. At score
time a false-positive rate ``rate`` gives the threshold ``t = quantile(1 - rate')`` with
``rate' = rate * min(1, chunk_tokens / n_tokens)``: a document of up to ``chunk_tokens`` tokens
is flagged by a kind with probability ``rate`` on reference-like text, and a longer document,
whose statistic is a maximum over more positions, gets a proportionally stricter threshold so
its per-document rate stays about ``rate`` (a union bound over its chunks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from emocurate.corpus.regulation import (
    Axes,
    MetricConfig,
    TurnSpan,
    analyse,
    slope,
    smooth,
    sustained_level,
    volatility,
)
from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes
from emocurate.records import Model, utc_now

if TYPE_CHECKING:
    from emocurate.corpus.score import ScoreConfig
    from emocurate.vectors.models import LoadedModel
    from emocurate.vectors.vectorset import VectorSet

CALIBRATION_FILE = "calibration.json"
DEFAULT_RATE = 0.01
CHUNK_TOKENS = 256
MIN_DIALOGUES = 20  # dialogue chunks needed to calibrate mirroring on turn pairs
NEUTRAL_SUBDIR = "neutral"  # a reference inside the vector folder used when none is given
FLOOR = -1e6  # stands for -inf (no level gives a run) in JSON
RECOVER_QUANTILE = 0.9  # recovery = back below the 90th percentile of reference tokens
KINDS_OF_STAT = {
    "distress": [
        "distress_episode",
        "unrecovered_distress",
        "unresolved_end",
        "escalating_response",
    ],
    "escalation": ["escalation"],
    "volatility": ["high_volatility"],
    "regulation": ["unhealthy_regulation"],
    "mirroring": ["mirroring"],
}


def missing_message(vectors_dir: str | Path) -> str:
    """The one-line error when a vector folder has no calibration."""
    return (
        f"{Path(vectors_dir) / CALIBRATION_FILE} not found: flags are calibrated on a reference "
        f"corpus; run `emocurate calibrate {vectors_dir} --reference CORPUS` (neutral text, "
        "e.g. the fit's neutral dialogues) or pass --z-threshold to use a fixed z-unit threshold"
    )


def _levels() -> np.ndarray:
    """Quantile levels stored: coarse in the bulk, fine in the upper tail where thresholds sit."""
    return np.unique(
        np.round(np.concatenate([np.linspace(0, 0.9, 91), np.linspace(0.9, 1, 401)]), 6)
    )


class Quantiles(Model):
    """The distribution of one statistic over reference chunks (quantile function on a grid)."""

    n: int = Field(description="reference chunks (or tokens) the quantiles are computed from")
    levels: list[float]
    values: list[float]

    @classmethod
    def of(cls, x: Sequence[float] | np.ndarray) -> Quantiles:
        a = np.maximum(np.asarray(x, dtype=np.float64), FLOOR)
        if a.size == 0:
            raise InputError("calibration: no reference values for a statistic")
        lv = _levels()
        return cls(
            n=int(a.size),
            levels=lv.tolist(),
            values=[float(v) for v in np.quantile(a, lv)],
        )

    def at(self, q: float) -> float:
        """The ``q`` quantile (linear interpolation between stored levels)."""
        return float(np.interp(q, self.levels, self.values))


class Calibration(Model):
    """``calibration.json`` in a vector-set folder: where the thresholds come from."""

    version: int = 1
    reference: list[str] = Field(description="the reference inputs as given")
    reference_hash: str = Field(description="sha256 (16 hex) of the reference texts in order")
    n_docs: int
    n_skipped: int = Field(default=0, description="reference rows not used (unreadable, empty)")
    skipped_examples: list[str] = Field(default_factory=list)
    n_chunks: int
    n_dialogue_chunks: int
    n_tokens: int
    chunk_tokens: int = Field(description="reference documents were cut into chunks this long")
    smooth: int
    min_episode: int
    merge_gap: int
    mirror_margin: float
    layer: int
    vectors_hash: str = Field(description="hash of the vectors and z-reference calibrated")
    stats: dict[str, Quantiles] = Field(
        description="per-chunk statistics (distress, escalation, volatility, regulation, "
        "mirroring) and token-level distributions (distress_token, arousal_token)"
    )
    check: dict[str, Any] = Field(
        default_factory=dict,
        description="flag rates measured on the reference documents at the default rate",
    )
    created: str = Field(default_factory=utc_now)

    def level(self, rate: float, n_tokens: int | None = None) -> float:
        """Quantile level for a document of ``n_tokens`` at false-positive rate ``rate``."""
        scale = 1.0 if not n_tokens else min(1.0, self.chunk_tokens / n_tokens)
        return 1.0 - rate * scale

    def thresholds(self, rate: float, n_tokens: int | None = None) -> dict[str, float]:
        """The metric thresholds at ``rate`` (for a document of ``n_tokens``, else per chunk)."""
        q = self.level(rate, n_tokens)
        th = self.stats["distress"].at(q)
        out = {
            "threshold": th,
            "recover_level": min(th, self.stats["distress_token"].at(RECOVER_QUANTILE)),
            "escalation_slope": self.stats["escalation"].at(q),
            "volatility_high": self.stats["volatility"].at(q),
        }
        if "regulation" in self.stats:
            out["regulation_threshold"] = -self.stats["regulation"].at(q)
        if "mirroring" in self.stats and self.n_dialogue_chunks >= MIN_DIALOGUES:
            out["arousal_high"] = self.stats["mirroring"].at(q)
        else:
            out["arousal_high"] = self.stats["arousal_token"].at(q)
        return out

    def metric_config(
        self, base: MetricConfig, rate: float, n_tokens: int | None = None
    ) -> MetricConfig:
        """``base`` with the calibrated thresholds for one document."""
        return base.model_copy(update=self.thresholds(rate, n_tokens))

    def check_compatible(self, vs: VectorSet, layer: int, smooth_k: int, where: Path) -> None:
        """One-line errors when scoring would use different vectors or smoothing."""
        if self.vectors_hash != vectors_hash(vs, layer):
            raise InputError(
                f"{where}: calibrated for other vectors or layer (calibrated layer {self.layer}); "
                f"rerun `emocurate calibrate`"
            )
        if self.smooth != smooth_k:
            raise InputError(
                f"{where}: calibrated with --smooth {self.smooth}, scoring asks for {smooth_k}; "
                "use the same or recalibrate"
            )

    def save(self, vectors_dir: str | Path) -> Path:
        path = Path(vectors_dir) / CALIBRATION_FILE
        atomic_write_bytes(path, (self.model_dump_json(indent=1) + "\n").encode())
        return path


def load_calibration(vectors_dir: str | Path) -> Calibration:
    """The calibration of a vector folder, or a one-line error saying how to make one."""
    path = Path(vectors_dir) / CALIBRATION_FILE
    if not path.exists():
        raise InputError(missing_message(vectors_dir))
    try:
        return Calibration.model_validate_json(path.read_text("utf-8"))
    except Exception as exc:
        raise InputError(f"{path}: invalid calibration: {str(exc).splitlines()[0]}") from None


def vectors_hash(vs: VectorSet, layer: int) -> str:
    """sha256 (16 hex) of the unit vectors and the z-reference at ``layer``."""
    h = hashlib.sha256()
    h.update(vs.unit(layer).float().contiguous().numpy().tobytes())
    if layer in vs.ref_mean:
        h.update(vs.ref_mean[layer].float().contiguous().numpy().tobytes())
        h.update(vs.ref_std[layer].float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# -- statistics ----------------------------------------------------------------------------------


def mirroring_level(z: np.ndarray, axes: Axes, turns: Sequence[TurnSpan], margin: float) -> float:
    """The mirroring statistic: flagged at ``arousal_high = t`` iff the value exceeds ``t``.

    Per human->assistant pair (unsmoothed turn means): the human's arousal when the answer is
    within ``margin`` of it, else the lower of the two; the maximum over pairs.
    """
    ar = []
    for t in turns:
        if t.end > t.start:
            ar.append((t.speaker, float(z[t.start : t.end].mean(0) @ axes.arousal)))
    best = FLOOR
    for (sa, a), (sb, b) in zip(ar, ar[1:], strict=False):
        if sa == "human" and sb == "assistant":
            # regulation.mirrors at level t is true iff this value exceeds t
            best = max(best, a if b >= a - margin else min(a, b))
    return best


def chunk_statistics(
    z: np.ndarray,
    zr: np.ndarray | None,
    turns: Sequence[TurnSpan],
    axes: Axes,
    cfg: MetricConfig,
) -> dict[str, float]:
    """The per-document statistics of one (chunk of a) reference document."""
    zs = smooth(z, cfg.smooth)
    out: dict[str, float] = {}
    if axes.distress:
        d, raw = zs[:, axes.distress].mean(1), z[:, axes.distress].mean(1)
        out["distress"] = sustained_level(d, raw, cfg.min_episode, cfg.merge_gap)
        out["escalation"] = slope(d)
    if axes.has_va:
        out["volatility"] = volatility(zs @ axes.valence, cfg.smooth)
    if zr is not None and zr.size:
        rs, rr = smooth(zr, cfg.smooth).mean(1), zr.mean(1)
        out["regulation"] = sustained_level(-rs, -rr, cfg.min_episode, cfg.merge_gap)
    if turns and axes.has_va:
        out["mirroring"] = mirroring_level(z, axes, turns, cfg.mirror_margin)
    return out


def split_chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` chunks of ``size`` tokens; a remainder under ``size/2`` joins the last."""
    if n <= size:
        return [(0, n)]
    bounds = list(range(0, n, size))
    chunks = [(b, min(n, b + size)) for b in bounds]
    if len(chunks) > 1 and chunks[-1][1] - chunks[-1][0] < size // 2:
        last = chunks.pop()
        chunks[-1] = (chunks[-1][0], last[1])
    return chunks


def clip_turns(turns: Sequence[TurnSpan], lo: int, hi: int) -> list[TurnSpan]:
    """Turns overlapping ``[lo, hi)``, clipped and shifted to the chunk."""
    out = []
    for t in turns:
        s, e = max(t.start, lo), min(t.end, hi)
        if e > s:
            out.append(TurnSpan(t.speaker, s - lo, e - lo))
    return out


# -- the calibration run -------------------------------------------------------------------------


def reference_inputs(vectors_dir: str | Path, reference: Sequence[str | Path] | None) -> list[str]:
    """The reference inputs: as given, else ``VECTORS/neutral``; stage folders read via ``data/``."""
    if not reference:
        default = Path(vectors_dir) / NEUTRAL_SUBDIR
        if not default.exists():
            raise InputError(
                f"{vectors_dir} has no neutral reference ({default} not found): run "
                f"`emocurate calibrate {vectors_dir} --reference CORPUS` with neutral text "
                "(e.g. the fit's neutral dialogues folder)"
            )
        reference = [default]
    out = []
    for r in reference:
        p = Path(str(r))
        if p.is_dir() and (p / "manifest.json").exists() and (p / "data").is_dir():
            out.append(str(p / "data"))  # a stage folder: its records, not its manifest
        else:
            out.append(str(r))
    return out


def calibrate(
    vectors_dir: str | Path,
    reference: Sequence[str | Path] | None = None,
    cfg: ScoreConfig | None = None,
    *,
    chunk_tokens: int = CHUNK_TOKENS,
    limit: int = 5000,
    rate: float = DEFAULT_RATE,
    lm: LoadedModel | None = None,
) -> Calibration:
    """Score ``reference`` with the vectors, store the statistics' distributions, check rates.

    Args:
        vectors_dir: the vector-set folder; ``calibration.json`` is written there.
        reference: corpus inputs any reader accepts (default: ``VECTORS/neutral``).
        cfg: scoring options (text field, window, smoothing, layer, device); its metric
            settings fix ``min_episode``, ``merge_gap`` and ``mirror_margin``.
        chunk_tokens: reference documents are cut into chunks of this many tokens.
        limit: read at most this many reference documents.
        rate: the false-positive rate whose flag rates are measured in ``check``.
        lm: a loaded model (default: the vector set's).
    """
    from emocurate.corpus.readers import Doc, ReadOptions, iter_corpus
    from emocurate.corpus.score import ScoreConfig, ScoredDoc, Scorer, load_vectors
    from emocurate.vectors.models import load_model

    cfg = cfg or ScoreConfig()
    cfg = cfg.model_copy(update={"calibration": None, "z_thresholds": True, "trace_others": 0})
    inputs = reference_inputs(vectors_dir, reference)
    vs, reg = load_vectors(vectors_dir, cfg)
    docs: list[Doc] = []
    skipped: list[str] = []
    # Reference ids do not matter (ids are generated), so an id field of the scored corpus
    # missing from the reference costs nothing; unreadable rows are counted, never hidden.
    for item in iter_corpus(inputs, ReadOptions(cfg.text_field, None, cfg.max_chars)):
        if isinstance(item, Doc) and item.text.strip():
            docs.append(item)
            if len(docs) >= limit:
                break
        else:
            skipped.append(
                f"{item.source} {item.position}: {item.reason}"
                if not isinstance(item, Doc)
                else f"{item.source} {item.position}: empty text"
            )
    if not docs:
        raise InputError(f"calibration reference {', '.join(inputs)} has no readable documents")
    lm = lm or load_model(cfg.model or vs.meta.model_id, device=cfg.device, dtype=cfg.dtype)
    collected: list[tuple[np.ndarray, np.ndarray | None, list[TurnSpan]]] = []

    class _Collector(Scorer):
        def _finish(self, p: Any, z: np.ndarray, zr: np.ndarray | None) -> ScoredDoc:
            reg_z = z if zr is None and self.vs.meta.kind == "regulation" else zr
            collected.append(
                (z.copy(), None if reg_z is None else reg_z.copy(), [TurnSpan(*t) for t in p.turns])
            )
            return super()._finish(p, z, zr)

    # The collector needs each document's [T, E] scores on the host: the host metrics path.
    scorer = _Collector(vs, lm, cfg.model_copy(update={"metrics_device": "host"}), regulation=reg)
    scorer.score_full(docs)
    base, axes = scorer.mcfg, scorer.axes
    stats, n_chunks, n_dialogue, n_tokens = reference_statistics(
        collected, axes, base, chunk_tokens
    )
    layer = scorer.layer
    cal = Calibration(
        reference=[str(r) for r in (reference or inputs)],
        reference_hash=hashlib.sha256("\x1e".join(d.text for d in docs).encode()).hexdigest()[:16],
        n_docs=len(docs),
        n_skipped=len(skipped),
        skipped_examples=skipped[:5],
        n_chunks=n_chunks,
        n_dialogue_chunks=n_dialogue,
        n_tokens=n_tokens,
        chunk_tokens=chunk_tokens,
        smooth=base.smooth,
        min_episode=base.min_episode,
        merge_gap=base.merge_gap,
        mirror_margin=base.mirror_margin,
        layer=layer,
        vectors_hash=vectors_hash(vs, layer),
        stats=stats,
    )
    cal.check = flag_rates(cal, collected, axes, base, rate)
    cal.save(vectors_dir)
    return cal


def reference_statistics(
    scores: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
    chunk_tokens: int,
) -> tuple[dict[str, Quantiles], int, int, int]:
    """Distributions of the statistics over chunks of the reference documents' z-scores.

    Returns ``(stats, n_chunks, n_dialogue_chunks, n_tokens)``.
    """
    per: dict[str, list[float]] = {}
    dist_tok: list[np.ndarray] = []
    aro_tok: list[np.ndarray] = []
    n_chunks = n_dialogue = n_tokens = 0
    for z, zr, turns in scores:
        if len(z) == 0:
            continue
        n_tokens += len(z)
        for lo, hi in split_chunks(len(z), chunk_tokens):
            ct = clip_turns(turns, lo, hi)
            st = chunk_statistics(z[lo:hi], None if zr is None else zr[lo:hi], ct, axes, base)
            n_chunks += 1
            n_dialogue += int("mirroring" in st)
            for k, v in st.items():
                per.setdefault(k, []).append(v)
        zs = smooth(z, base.smooth)
        if axes.distress:
            dist_tok.append(zs[:, axes.distress].mean(1))
        if axes.has_va:
            aro_tok.append(zs @ axes.arousal)
    if "distress" not in per:
        raise InputError("calibration: no distress directions or no reference tokens")
    stats = {k: Quantiles.of(v) for k, v in per.items()}
    stats["distress_token"] = Quantiles.of(np.concatenate(dist_tok))
    stats["arousal_token"] = Quantiles.of(
        np.concatenate(aro_tok) if aro_tok else np.zeros(1, dtype=np.float64)
    )
    return stats, n_chunks, n_dialogue, n_tokens


def flag_rates(
    cal: Calibration,
    docs: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
    rate: float,
) -> dict[str, Any]:
    """Share of documents flagged (any kind, and per kind) when scored at ``rate``."""
    per_kind: dict[str, int] = {}
    any_flag = 0
    for z, zr, turns in docs:
        mcfg = cal.metric_config(base, rate, len(z))
        an = analyse(z, axes, mcfg, regulation=zr, turns=turns)
        kinds = {f.kind for f in an.flags}
        any_flag += int(bool(kinds))
        for k in kinds:
            per_kind[k] = per_kind.get(k, 0) + 1
    n = max(1, len(docs))
    warn = []
    if rate * cal.n_chunks < 5:
        warn.append(
            f"only {cal.n_chunks} reference chunks: fewer than 5 expected above the "
            f"{1 - rate:.3f} quantile, so thresholds at rate {rate} are extrapolated"
        )
    return {
        "rate": rate,
        "n_docs": len(docs),
        "any": any_flag / n,
        "per_kind": {k: v / n for k, v in sorted(per_kind.items())},
        "warnings": warn,
    }
