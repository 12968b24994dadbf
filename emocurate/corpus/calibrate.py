"""Calibrated flags: thresholds measured at the length of the document being scored.

A fixed threshold in z units says little: the smoothed composites live on a narrower scale than
the per-token reference they are z-scored against. And a threshold that is a quantile of a
per-document statistic only holds for documents as long as the reference's: a maximum over more
tokens is larger (the first calibration cut reference documents into 256-token chunks and assumed
every chunk was that long; a reference of 88-token texts promised 1% and fired on 4% of
357-token documents).

So every flag family has a per-document statistic ``s(doc)`` ("flagged at threshold t iff
s(doc) > t") and its distribution is measured **at a ladder of lengths**: the reference
documents' z-scores are joined end to end (as a corpus of longer documents would be) and cut
into pieces of n tokens for n = 16, 23, 32, 45, ... (ratio sqrt 2) as long as the reference
gives :data:`MIN_PIECES` pieces; each piece is smoothed and analysed as a document.

* ``distress`` -- the highest level at which the piece has a distress episode
  (:func:`~emocurate.corpus.regulation.sustained_level`). Drives ``distress_episode`` and what
  derives from an episode (``unrecovered_distress``, ``unresolved_end``, ``escalation``,
  ``escalating_response``).
* ``valence_high`` and ``valence_low`` -- the highest and (negated) lowest smoothed valence of
  the piece: each side of a swing (``high_volatility``) on its own. Calibrating the swing level
  itself (both sides at once) let one real affect beside neutral text fire on ~10-15% of such
  documents: only the other side needed noise (issue 18). Each side now needs a level neutral
  text reaches on a share r of documents, so ``high_volatility`` fires on **at most** r of
  neutral documents (usually far fewer: both sides, three alternating visits).
* ``regulation`` -- the highest level below which the regulation axis has a run (negated).
* ``mirroring`` -- per human->assistant pair, the level below which it is mirrored
  (:func:`pair_levels`; per pair, not per length).

At score time a promised rate ``r`` and a document of ``n`` tokens give ``t = Q_n(1 - r)``,
interpolated in log n between the two nearest ladder lengths; past the longest length L the
document counts as n / L independent pieces, ``t = Q_L((1 - r)^(L / n))``; for a dialogue with P
pairs ``t = Q_pair((1 - r)^(1 / P))``. Upper quantiles beyond the measured pieces are extrapolated
with an exponential tail fitted to the highest pieces (the tail of a maximum of many weakly
dependent values). So **each flag family fires on a share r of reference-like documents of any
length** (``high_volatility``: at most r).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from emocurate.artifacts import ReferenceShift
from emocurate.corpus.regulation import (
    Axes,
    MetricConfig,
    TurnSpan,
    analyse,
    smooth,
    sustained_level,
    valence_of,
)
from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes
from emocurate.records import Model, utc_now

if TYPE_CHECKING:
    from emocurate.corpus.score import ScoreConfig
    from emocurate.vectors.models import LoadedModel
    from emocurate.vectors.vectorset import VectorSet

CALIBRATION_FILE = "calibration.json"
VERSION = 3
DEFAULT_RATE = 0.01
MIN_PAIRS = 20  # human->assistant pairs needed to calibrate mirroring on turn pairs
NEUTRAL_SUBDIR = "neutral"  # a reference inside the vector folder used when none is given
RECOVER_QUANTILE = 0.9  # recovery = back below the 90th percentile of reference tokens
MIN_PIECES = 40  # the ladder stops at the longest length giving this many reference pieces
SHORTEST = 16  # the ladder's first length (tokens)
MAX_PIECES = 2000  # pieces analysed per length (short lengths have many more)
MAX_TOKENS = 100_000  # and at most about this many tokens per length (bounds the cost)
FLOOR = -1e6  # stands for -inf (no level gives a run) in JSON
KINDS_OF_STAT = {
    "distress": [
        "distress_episode",
        "unrecovered_distress",
        "unresolved_end",
        "escalation",
        "escalating_response",
    ],
    "valence_high": ["high_volatility"],
    "valence_low": ["high_volatility"],
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


class Quantiles(Model):
    """The distribution of a token-level series over the reference (quantile function)."""

    n: int = Field(description="reference tokens the quantiles are computed from")
    levels: list[float]
    values: list[float]

    @classmethod
    def of(cls, x: Sequence[float] | np.ndarray) -> Quantiles:
        a = np.asarray(x, dtype=np.float64)
        if a.size == 0:
            raise InputError("calibration: no reference values for a statistic")
        lv = np.unique(
            np.round(np.concatenate([np.linspace(0, 0.9, 91), np.linspace(0.9, 1, 401)]), 6)
        )
        return cls(n=int(a.size), levels=lv.tolist(), values=[float(v) for v in np.quantile(a, lv)])

    def at(self, q: float) -> float:
        """The ``q`` quantile (linear interpolation between stored levels)."""
        return float(np.interp(q, self.levels, self.values))


class LengthQuantiles(Model):
    """The distribution of one statistic over reference pieces of ``n`` tokens.

    ``values`` at ``levels`` (quantile function up to ``tail_q``); above ``tail_q`` the
    quantile is ``tail_value + tail_scale * ln((1 - tail_q) / (1 - q))`` (exponential tail,
    scale = mean excess of the highest pieces).
    """

    n: int = Field(description="piece length in tokens")
    pieces: int
    levels: list[float]
    values: list[float]
    tail_q: float
    tail_value: float
    tail_scale: float

    @classmethod
    def of(cls, n: int, x: np.ndarray) -> LengthQuantiles:
        a = np.sort(np.maximum(np.asarray(x, dtype=np.float64), FLOOR))
        m = a.size
        if m == 0:
            raise InputError("calibration: no reference pieces for a statistic")
        k = int(min(max(5, m // 10), m))  # the highest k pieces fit the tail
        tail_q = 1.0 - k / m
        tail_value = float(a[m - k]) if k < m else float(a[0])
        excess = a[m - k :] - tail_value
        scale = float(max(excess.mean(), 1e-9 * max(1.0, abs(tail_value))))
        lv = np.unique(
            np.round(np.concatenate([np.linspace(0, 0.9, 91), np.linspace(0.9, 1, 201)]), 6)
        )
        lv = np.unique(np.append(lv[lv < tail_q], tail_q))
        return cls(
            n=n,
            pieces=m,
            levels=lv.tolist(),
            values=[float(v) for v in np.quantile(a, lv)],
            tail_q=tail_q,
            tail_value=tail_value,
            tail_scale=scale,
        )

    def cdf(self, x: float) -> float:
        """The share of reference pieces of ``n`` tokens whose statistic is at most ``x``."""
        if x > self.tail_value:
            return 1.0 - (1.0 - self.tail_q) * math.exp(-(x - self.tail_value) / self.tail_scale)
        return float(np.interp(x, self.values, self.levels))

    def at(self, q: float) -> float:
        """The ``q`` quantile of the statistic on pieces of ``n`` tokens."""
        if q > self.tail_q:
            return self.tail_value + self.tail_scale * math.log(
                (1.0 - self.tail_q) / max(1.0 - q, 1e-300)
            )
        return float(np.interp(q, self.levels, self.values))


class Ladder(Model):
    """One statistic measured at a ladder of piece lengths (ascending ``n``)."""

    by_length: list[LengthQuantiles]

    def threshold(self, rate: float, n_tokens: int) -> float:
        """The statistic's threshold so a document of ``n_tokens`` is flagged with ``rate``."""
        lad = self.by_length
        if n_tokens <= lad[0].n:
            return lad[0].at(1 - rate)
        if n_tokens >= lad[-1].n:  # n / L independent pieces: none above t with 1 - rate
            last = lad[-1]
            return last.at((1 - rate) ** (last.n / n_tokens))
        i = next(k for k in range(1, len(lad)) if lad[k].n >= n_tokens)
        a, b = lad[i - 1], lad[i]
        f = (math.log(n_tokens) - math.log(a.n)) / (math.log(b.n) - math.log(a.n))
        return (1 - f) * a.at(1 - rate) + f * b.at(1 - rate)

    def percentile(self, x: float, n_tokens: int) -> float:
        """Where ``x`` sits among reference documents of ``n_tokens`` (0-100): the inverse of
        :meth:`threshold` (flagged at ``rate`` iff the percentile is above ``100 (1 - rate)``)."""
        lad = self.by_length
        if not math.isfinite(x):
            return 0.0 if x < 0 else 100.0
        if n_tokens <= lad[0].n:
            return 100.0 * lad[0].cdf(x)
        if n_tokens >= lad[-1].n:  # n / L independent pieces, as threshold()
            return 100.0 * lad[-1].cdf(x) ** (n_tokens / lad[-1].n)
        i = next(k for k in range(1, len(lad)) if lad[k].n >= n_tokens)
        a, b = lad[i - 1], lad[i]
        f = (math.log(n_tokens) - math.log(a.n)) / (math.log(b.n) - math.log(a.n))
        lo, hi = 0.0, 1.0  # the quantile q whose interpolated threshold is x (monotone in q)
        for _ in range(50):
            mid = (lo + hi) / 2
            if (1 - f) * a.at(mid) + f * b.at(mid) <= x:
                lo = mid
            else:
                hi = mid
        return 100.0 * lo


class Calibration(Model):
    """``calibration.json`` in a vector-set folder: where the thresholds come from."""

    version: int = VERSION
    reference: list[str] = Field(description="the reference inputs as given")
    reference_hash: str = Field(description="sha256 (16 hex) of the reference texts in order")
    n_docs: int
    n_skipped: int = Field(default=0, description="reference rows not used (unreadable, empty)")
    skipped_examples: list[str] = Field(default_factory=list)
    n_tokens: int
    n_pairs: int = Field(default=0, description="human->assistant turn pairs in the reference")
    smooth: int
    min_episode: int
    merge_gap: int
    mirror_margin: float
    swing_gap: int
    layer: int
    vectors_hash: str = Field(description="hash of the vectors and z-reference calibrated")
    ladders: dict[str, Ladder] = Field(
        description="per-length distributions of the distress, volatility and regulation "
        "statistics on pieces of the joined reference"
    )
    pairs: LengthQuantiles | None = Field(
        default=None, description="mirroring levels of the reference's human->assistant pairs"
    )
    tokens: dict[str, Quantiles] = Field(
        description="token-level distributions: distress_token (sets recover_level), "
        "arousal_token (mirroring when the reference has too few dialogue pairs)"
    )
    check: dict[str, Any] = Field(
        default_factory=dict,
        description="flag rates measured on the reference documents at the default rate",
    )
    created: str = Field(default_factory=utc_now)

    @property
    def mean_tokens(self) -> int:
        """The reference's mean document length (where a single threshold is shown)."""
        return max(1, round(self.n_tokens / max(1, self.n_docs)))

    def thresholds(
        self, rate: float, n_tokens: int | None = None, n_pairs: int | None = None
    ) -> dict[str, float]:
        """The metric thresholds at ``rate`` for a document of ``n_tokens`` tokens and
        ``n_pairs`` human->assistant pairs (default: the reference's mean length, one pair)."""
        n = self.mean_tokens if not n_tokens else int(n_tokens)
        out = {fam: lad.threshold(rate, n) for fam, lad in self.ladders.items()}
        th = out.pop("distress")
        rho = min(th, self.tokens["distress_token"].at(RECOVER_QUANTILE))
        res = {
            "threshold": th,
            "recover_level": rho,
            "escalation_margin": 0.5 * max(th - rho, 0.0),
            "volatility_high": out.get("valence_high", float("inf")),
            "volatility_low": out.get("valence_low", float("inf")),
        }
        if "regulation" in out:
            res["regulation_threshold"] = -out["regulation"]
        pairs = max(1, n_pairs or 1)
        if self.pairs is not None and self.n_pairs >= MIN_PAIRS:
            res["arousal_high"] = self.pairs.at((1 - rate) ** (1 / pairs))  # P independent
        else:
            res["arousal_high"] = self.tokens["arousal_token"].at(1 - rate)
        return res

    def metric_config(
        self,
        base: MetricConfig,
        rate: float,
        n_tokens: int | None = None,
        n_pairs: int | None = None,
    ) -> MetricConfig:
        """``base`` with the calibrated thresholds for one document."""
        return base.model_copy(update=self.thresholds(rate, n_tokens, n_pairs))

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


SHIFT_BAND = (25.0, 75.0)  # the reference's middle half
SHIFT_MIN_DOCS = 20  # fewer documents: the median says too little


def reference_shift(statistic: str, docs: int, median_pct: float) -> ReferenceShift:
    """Whether the corpus's median document sits in the middle half of the reference.

    ``distress_pct`` of reference-like neutral documents is uniform on [0, 100] (that is what
    calibrated means), so their median is near 50; a corpus whose median is outside the middle
    half either carries distress in most documents or is unlike the reference, and then the
    promised rates do not hold for its neutral text (issue 18: 88 and 118 of 400 neutral
    documents of another source flagged at a promised 1%).
    """
    warning = ""
    what = "distress" if statistic == "distress" else "mirroring level (dialogues)"
    if docs >= SHIFT_MIN_DOCS and not SHIFT_BAND[0] <= median_pct <= SHIFT_BAND[1]:
        high = median_pct > SHIFT_BAND[1]
        warning = (
            f"the corpus is unlike the calibration reference: its median document's {what} "
            f"is at percentile {median_pct:.0f} of the reference (50 for reference-like text), "
            + (
                f"so either most documents carry it or {statistic} flags fire more often than "
                "the promised rate on its neutral text; "
                if high
                else f"so {statistic} flags fire less often than the promised rate; "
            )
            + "calibrate on neutral text like this corpus (`emocurate calibrate VECTORS "
            "--reference CORPUS`)"
        )
    return ReferenceShift.model_validate(
        {"statistic": statistic, "docs": docs, "median_percentile": median_pct, "warning": warning}
    )


def load_calibration(vectors_dir: str | Path) -> Calibration:
    """The calibration of a vector folder, or a one-line error saying how to make one."""
    path = Path(vectors_dir) / CALIBRATION_FILE
    if not path.exists():
        raise InputError(missing_message(vectors_dir))
    try:
        raw = json.loads(path.read_text("utf-8"))
    except Exception as exc:
        raise InputError(f"{path}: invalid calibration: {str(exc).splitlines()[0]}") from None
    if isinstance(raw, dict) and raw.get("version", 1) != VERSION:
        raise InputError(
            f"{path}: calibration version {raw.get('version', 1)}, this emocurate reads "
            f"version {VERSION} (1: per-chunk quantiles, true for one document length only; 2: "
            "volatility calibrated on both sides at once); rerun "
            f"`emocurate calibrate {vectors_dir}`"
        )
    try:
        return Calibration.model_validate(raw)
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


def pair_levels(z: np.ndarray, axes: Axes, turns: Sequence[TurnSpan], margin: float) -> list[float]:
    """Per human->assistant pair, the level below which it is mirroring.

    Flagged at ``arousal_high = t`` iff the value exceeds ``t`` (unsmoothed turn means): the
    human's arousal when the answer is within ``margin`` of it, else the lower of the two.
    """
    ar = []
    for t in turns:
        if t.end > t.start:
            ar.append((t.speaker, float(z[t.start : t.end].mean(0) @ axes.arousal)))
    out = []
    for (sa, a), (sb, b) in zip(ar, ar[1:], strict=False):
        if sa == "human" and sb == "assistant":
            # regulation.mirrors at level t is true iff this value exceeds t
            out.append(a if b >= a - margin else min(a, b))
    return out


def mirroring_level(z: np.ndarray, axes: Axes, turns: Sequence[TurnSpan], margin: float) -> float:
    """The largest :func:`pair_levels` (``-inf`` without pairs): flagged at ``t`` iff above."""
    return max(pair_levels(z, axes, turns, margin), default=float("-inf"))


def n_pairs(turns: Sequence[TurnSpan]) -> int:
    """Human->assistant pairs among non-empty turns (the mirroring unit)."""
    sp = [t.speaker for t in turns if t.end > t.start]
    return sum(a == "human" and b == "assistant" for a, b in zip(sp, sp[1:], strict=False))


def ladder_lengths(n_tokens: int) -> list[int]:
    """16, 23, 32, 45, ... (ratio sqrt 2) while the reference gives ``MIN_PIECES`` pieces."""
    out: list[int] = []
    k = 0
    while True:
        n = round(SHORTEST * 2 ** (k / 2))
        if n_tokens // n < MIN_PIECES:
            break
        out.append(n)
        k += 1
    return out or [max(1, n_tokens // MIN_PIECES)]


class JoinedValence:
    """Valence of any piece of the reference documents joined end to end, smoothed within the
    piece as a scored document is (valence is not linear in z, so it cannot be joined first);
    the documents stay as they are (no joined copy of every emotion's z-scores)."""

    def __init__(self, parts: list[np.ndarray], weights: np.ndarray, smooth_k: int) -> None:
        self.parts, self.weights, self.k = parts, weights, smooth_k
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __call__(self, lo: int, n: int) -> np.ndarray:
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        rows, pos, i = [], lo, first
        while pos < lo + n and i < len(self.parts):
            a = pos - int(self.starts[i])
            take = self.parts[i][a : a + (lo + n - pos)]
            rows.append(take)
            pos += len(take)
            i += 1
        return valence_of(smooth(np.concatenate(rows), self.k), self.weights)


def piece_statistics(
    d_raw: np.ndarray,
    v_piece: JoinedValence | None,
    r_raw: np.ndarray | None,
    cfg: MetricConfig,
    rho: float,
    n: int,
) -> dict[str, np.ndarray]:
    """The statistics of the non-overlapping ``n``-token pieces of the joined raw series (at
    most :data:`MAX_PIECES` and :data:`MAX_TOKENS` tokens, at least :data:`MIN_PIECES`, evenly
    spaced)."""
    out: dict[str, list[float]] = {}
    starts = np.arange(0, len(d_raw) - n + 1, n)
    keep = max(MIN_PIECES, min(MAX_PIECES, MAX_TOKENS // n))
    if len(starts) > keep:  # enough for the tail; evenly over the reference
        starts = starts[np.linspace(0, len(starts) - 1, keep).round().astype(int)]
    for lo in starts.tolist():
        raw = d_raw[lo : lo + n]
        out.setdefault("distress", []).append(
            sustained_level(smooth(raw, cfg.smooth), raw, cfg.min_episode, cfg.merge_gap, rho)
        )
        if v_piece is not None:  # each side of a swing on its own (see module docstring)
            piece = v_piece(lo, n)
            out.setdefault("valence_high", []).append(float(piece.max()))
            out.setdefault("valence_low", []).append(float(-piece.min()))
        if r_raw is not None:
            raw = -r_raw[lo : lo + n]
            out.setdefault("regulation", []).append(
                sustained_level(smooth(raw, cfg.smooth), raw, cfg.min_episode, cfg.merge_gap)
            )
    return {k: np.asarray(v) for k, v in out.items()}


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
    layer = scorer.layer
    cal = calibration_from_scores(
        collected,
        scorer.axes,
        scorer.mcfg,
        rate=rate,
        reference=[str(r) for r in (reference or inputs)],
        reference_hash=hashlib.sha256("\x1e".join(d.text for d in docs).encode()).hexdigest()[:16],
        n_docs=len(docs),
        n_skipped=len(skipped),
        skipped_examples=skipped[:5],
        layer=layer,
        vectors_hash=vectors_hash(vs, layer),
    )
    cal.save(vectors_dir)
    return cal


def reference_ladders(
    scores: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
) -> tuple[dict[str, Ladder], LengthQuantiles | None, dict[str, Quantiles], int, int]:
    """The statistics' distributions at every ladder length, over the joined reference.

    Returns ``(ladders, pair levels, token quantiles, n_tokens, n_pairs)``.
    """
    d_parts: list[np.ndarray] = []
    v_parts: list[np.ndarray] = []
    r_parts: list[np.ndarray] = []
    pairs: list[float] = []
    d_tok: list[np.ndarray] = []
    aro_tok: list[np.ndarray] = []
    n_tokens = 0
    for z, zr, turns in scores:
        if len(z) == 0:
            continue
        n_tokens += len(z)
        zs = smooth(z, base.smooth)
        if axes.distress:
            d_parts.append(z[:, axes.distress].mean(1))
            d_tok.append(zs[:, axes.distress].mean(1))
        if axes.has_va:
            v_parts.append(z)  # valence is not linear in z: pieces smooth and rectify z
            aro_tok.append(zs @ axes.arousal)
            if turns:
                pairs += pair_levels(z, axes, turns, base.mirror_margin)
        if zr is not None and zr.size:
            r_parts.append(zr.mean(1))
    if not d_parts:
        raise InputError("calibration: no distress directions or no reference tokens")
    tokens = {
        "distress_token": Quantiles.of(np.concatenate(d_tok)),
        "arousal_token": Quantiles.of(
            np.concatenate(aro_tok) if aro_tok else np.zeros(1, dtype=np.float64)
        ),
    }
    rho = tokens["distress_token"].at(RECOVER_QUANTILE)
    d_raw = np.concatenate(d_parts)
    v_piece = JoinedValence(v_parts, axes.valence, base.smooth) if v_parts else None
    r_raw = np.concatenate(r_parts) if r_parts and len(r_parts) == len(d_parts) else None
    per: dict[str, list[LengthQuantiles]] = {}
    for n in ladder_lengths(n_tokens):
        for fam, vals in piece_statistics(d_raw, v_piece, r_raw, base, rho, n).items():
            per.setdefault(fam, []).append(LengthQuantiles.of(n, vals))
    ladders = {fam: Ladder(by_length=lq) for fam, lq in per.items()}
    pq = LengthQuantiles.of(1, np.asarray(pairs)) if pairs else None
    return ladders, pq, tokens, n_tokens, len(pairs)


def calibration_from_scores(
    scores: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
    *,
    rate: float = DEFAULT_RATE,
    **fields: Any,
) -> Calibration:
    """A :class:`Calibration` from reference z-scores (``fields``: provenance, hashes, layer)."""
    ladders, pq, tokens, n_tokens, n_pairs_ = reference_ladders(scores, axes, base)
    defaults: dict[str, Any] = {
        "reference": ["(z-scores)"],
        "reference_hash": "",
        "layer": 0,
        "vectors_hash": "",
        "n_docs": len(scores),
    }
    cal = Calibration(
        **{**defaults, **fields},
        n_tokens=n_tokens,
        n_pairs=n_pairs_,
        smooth=base.smooth,
        min_episode=base.min_episode,
        merge_gap=base.merge_gap,
        mirror_margin=base.mirror_margin,
        swing_gap=base.swing_gap,
        ladders=ladders,
        pairs=pq,
        tokens=tokens,
    )
    cal.check = flag_rates(cal, scores, axes, base, rate)
    return cal


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
        mcfg = cal.metric_config(base, rate, len(z), n_pairs(turns))
        an = analyse(z, axes, mcfg, regulation=zr, turns=turns)
        kinds = {f.kind for f in an.flags}
        any_flag += int(bool(kinds))
        for k in kinds:
            per_kind[k] = per_kind.get(k, 0) + 1
    n = max(1, len(docs))
    warn = []
    need = -math.log1p(-rate) / cal.mean_tokens * cal.n_tokens
    if need < 5:
        warn.append(
            f"only {cal.n_tokens} reference tokens: fewer than 5 reference episodes expected at "
            f"rate {rate} for documents of {cal.mean_tokens} tokens, so thresholds are "
            "extrapolated (exponential tail)"
        )
    return {
        "rate": rate,
        "n_docs": len(docs),
        "any": any_flag / n,
        "per_kind": {k: v / n for k, v in sorted(per_kind.items())},
        "warnings": warn,
    }
