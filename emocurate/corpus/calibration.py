"""The calibration artifact: ``VECTORS/calibration.json`` and what scoring reads from it.

The data half of calibrated flags (the per-length quantiles, thresholds at a rate, per-document
percentiles, the file's reader). Building one from a reference is
:mod:`emocurate.corpus.calibrate`, which runs the scorer; this module imports no scorer, so the
scorer depends on the calibration and not the other way round (see that module's docstring for
the method). It imports no other emocurate module than ``errors``, ``io`` and ``records`` either:
``emocurate.configs`` (``ScoreConfig.calibration``) and through it ``emocurate.artifacts``
import it, so the pair levels live in :mod:`emocurate.corpus.regulation` and the
reference-shift verdict in :mod:`emocurate.corpus.summary`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes
from emocurate.records import Model, utc_now

if TYPE_CHECKING:  # annotations only: emocurate.configs imports this module (ScoreConfig)
    from emocurate.configs import MetricConfig
    from emocurate.vectors.vectorset import VectorSet

CALIBRATION_FILE = "calibration.json"
VERSION = 5  # 5: position profile, reference joined to window length; 4: arousal of the
# emotions present, mirroring's token-level floor
DEFAULT_RATE = 0.01
MIN_PAIRS = 20  # human->assistant pairs needed to calibrate mirroring on turn pairs
NEUTRAL_SUBDIR = "neutral"  # a reference inside the vector folder used when none is given
RECOVER_QUANTILE = 0.9  # recovery = back below the 90th percentile of reference tokens
MIN_PIECES = 40  # the ladder stops at the longest length giving this many reference pieces
SHORTEST = 16  # the ladder's first length (tokens)
MAX_PIECES = 2000  # pieces analysed per length (short lengths have many more)
MAX_TOKENS = 100_000  # and at most about this many tokens per length (bounds the cost)
FLOOR = -1e6  # stands for -inf (no level gives a run) in JSON
MIN_BUCKET_TOKENS = 32  # reference tokens a position bucket needs (else it joins the one before)
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

    def cdf(self, x: float) -> float:
        """The share of reference tokens at or below ``x`` (the inverse of :meth:`at`)."""
        v = np.asarray(self.values)
        if x < v[0]:
            return 0.0
        if x >= v[-1]:
            return 1.0
        hi = int(np.searchsorted(v, x, side="right"))  # v[hi - 1] <= x < v[hi]
        lo_v, hi_v = v[hi - 1], v[hi]
        frac = 0.0 if hi_v == lo_v else (x - lo_v) / (hi_v - lo_v)
        return float(self.levels[hi - 1] + frac * (self.levels[hi] - self.levels[hi - 1]))


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
            return float(100.0 * lad[-1].cdf(x) ** (n_tokens / lad[-1].n))
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


def position_edges(limit: int) -> list[int]:
    """Bucket starts over sequence positions ``0 .. limit - 1``: one bucket per position up to 4,
    then widths growing by about sqrt 2 (activations change fast over the first tokens and
    slowly later). Position 0 is BOS where the model has one (never scored: offset 0)."""
    edges = [0, 1, 2, 3, 4]
    while edges[-1] < limit:
        edges.append(max(edges[-1] + 1, round(edges[-1] * math.sqrt(2))))
    return [e for e in edges if e < max(limit, 2)]


class PositionProfile(Model):
    """How neutral reference tokens read by their position in the scoring window, per column.

    ``means[b][c]`` is the mean z of column ``c`` over the reference tokens whose sequence
    position (the token's index in its window; BOS = 0) falls in bucket ``b`` (from
    ``edges[b]``); ``mean[c]`` the mean over all reference tokens. Scoring subtracts the
    difference at the token's position (:meth:`table`), so neutral text reads alike at every
    position and the overall level is kept. Only the level moves: rescaling each position by
    its spread as well multiplied the noise of the few tokens at the first positions (x3 at
    position 1) and put long neutral documents of a planted drift at 12% for a promised 5%.
    """

    edges: list[int] = Field(description="bucket starts (sequence positions; BOS is 0)")
    columns: list[str] = Field(description="the z columns: emotion names, then regulation ones")
    means: list[list[float]] = Field(description="per bucket, per column: mean z")
    mean: list[float] = Field(description="per column: mean z over all reference tokens")
    tokens: list[int] = Field(description="reference tokens per bucket")
    max_position: int = Field(description="the deepest reference token's position")

    def table(self, length: int) -> np.ndarray:
        """What is subtracted from z at sequence positions ``0 .. length - 1``
        (``[length, columns]``). Bucket means sit at their centres in ``log(p + 1)`` and are
        interpolated linearly between them (a step at each bucket edge left up to half a
        bucket's drift in place); before the first bucket with tokens (BOS) nothing is
        subtracted, past the last centre the last value holds."""
        k = len(self.edges)
        m = np.asarray(self.means, dtype=np.float64).reshape(k, -1)
        ends = [*self.edges[1:], self.max_position + 1]
        has = [i for i in range(k) if self.tokens[i] > 0]
        x = np.log1p(np.arange(length, dtype=np.float64))
        centres = [0.5 * (math.log1p(self.edges[i]) + math.log(ends[i])) for i in has]
        out = np.stack([np.interp(x, centres, m[has, c]) for c in range(m.shape[1])], 1)
        out -= np.asarray(self.mean)[None, :]
        out[np.arange(length) < self.edges[has[0]]] = 0.0
        return out


def position_profile(
    zs: Sequence[np.ndarray], positions: Sequence[np.ndarray], columns: Sequence[str]
) -> PositionProfile:
    """The :class:`PositionProfile` of reference z-scores ``zs[i]`` (``[T_i, C]``) whose tokens
    sit at sequence positions ``positions[i]`` (``[T_i]``). A bucket with fewer than
    :data:`MIN_BUCKET_TOKENS` tokens joins the one before it."""
    z = np.concatenate([np.asarray(a, dtype=np.float64) for a in zs])
    pos = np.concatenate([np.asarray(p, dtype=np.int64) for p in positions])
    if z.shape[0] == 0:
        raise InputError("calibration: no reference tokens for the position profile")
    edges = position_edges(int(pos.max()) + 1)
    counts = np.bincount(np.searchsorted(np.asarray(edges), pos, "right") - 1, minlength=len(edges))
    edges = [e for i, e in enumerate(edges) if i == 0 or counts[i] >= MIN_BUCKET_TOKENS]
    b = np.searchsorted(np.asarray(edges), pos, side="right") - 1
    n = np.bincount(b, minlength=len(edges))
    sums = np.zeros((len(edges), z.shape[1]))
    np.add.at(sums, b, z)
    mean = z.mean(0)
    means = np.where(n[:, None] > 0, sums / np.maximum(n, 1)[:, None], mean[None, :])
    return PositionProfile(
        edges=edges,
        columns=list(columns),
        means=[[round(float(v), 5) for v in row] for row in means],
        mean=[round(float(v), 5) for v in mean],
        tokens=[int(x) for x in n],
        max_position=int(pos.max()),
    )


class FlagRates(Model):
    """``calibration.json``'s ``check``: the share of reference documents flagged (any kind, and
    per kind) when scored at ``rate``, with what makes the thresholds less certain. Every field
    has a default so a calibration saved before a check was measured (``{}``) still reads."""

    rate: float = 0.0
    n_docs: int = 0
    any: float = 0.0
    per_kind: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class Calibration(Model):
    """``calibration.json`` in a vector-set folder: where the thresholds come from."""

    version: int = VERSION
    reference: list[str] = Field(description="the reference inputs as given")
    reference_hash: str = Field(description="sha256 (16 hex) of the reference texts in order")
    n_docs: int
    n_skipped: int = Field(default=0, description="reference rows not used (unreadable, empty)")
    skipped_examples: list[str] = Field(default_factory=list)
    n_tokens: int = Field(description="tokens scored: the reference joined to window length")
    doc_tokens: int = Field(default=0, description="tokens of the reference documents as read")
    n_joined: int = Field(default=0, description="joined documents the reference was scored as")
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
    positions: PositionProfile | None = Field(
        default=None,
        description="neutral z by position in the window, subtracted when scoring (None: the "
        "reference z-scores were given without positions)",
    )
    check: FlagRates = Field(
        default_factory=FlagRates,
        description="flag rates measured on the reference documents at the default rate",
    )
    created: str = Field(default_factory=utc_now)

    @property
    def reference_tokens(self) -> int:
        """Tokens of the reference itself (a small one is reused when joined: ``n_tokens``)."""
        return self.doc_tokens or self.n_tokens

    @property
    def mean_tokens(self) -> int:
        """The reference's mean document length (where a single threshold is shown)."""
        return max(1, round(self.reference_tokens / max(1, self.n_docs)))

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
        token_level = self.tokens["arousal_token"].at(1 - rate)
        if self.pairs_calibrated:
            assert self.pairs is not None
            # P independent pairs; and never under what a share ``rate`` of reference tokens
            # reach: a narrow reference (few distinct turns) put the pair level at 0.08 z, so
            # near-neutral turns of another source were "high arousal" (issue 18, seed 0)
            res["arousal_high"] = max(self.pairs.at((1 - rate) ** (1 / pairs)), token_level)
        else:
            res["arousal_high"] = token_level
        return res

    @property
    def pairs_calibrated(self) -> bool:
        """Mirroring uses the reference's turn pairs (enough of them), not token arousal."""
        return self.pairs is not None and self.n_pairs >= MIN_PAIRS

    def percentiles(
        self,
        distress_level: float | None,
        mirroring_level: float | None,
        n_tokens: int,
        n_pairs: int,
    ) -> dict[str, float]:
        """``distress_pct`` and ``mirroring_pct`` of one document (0-100; the keys it has): the
        inverse of :meth:`thresholds` (flagged at ``rate`` iff above ``100 (1 - rate)``)."""
        out: dict[str, float] = {}
        if distress_level is not None:
            out["distress_pct"] = round(
                self.ladders["distress"].percentile(distress_level, n_tokens), 2
            )
        if mirroring_level is not None and self.pairs_calibrated:
            assert self.pairs is not None
            p = max(1, n_pairs)
            by_pairs = self.pairs.cdf(mirroring_level) ** p
            by_tokens = self.tokens["arousal_token"].cdf(mirroring_level)  # the floor
            out["mirroring_pct"] = round(100.0 * min(by_pairs, by_tokens), 2)
        return out

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
            "volatility calibrated on both sides at once; 3: arousal read linearly; 4: reference "
            "tokens at early positions only); rerun "
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
