"""Regulation metrics: from per-token emotion z-scores to episodes, recovery and flags.

Everything here is pure NumPy on one document's ``[n_tokens, n_emotions]`` matrix of z-scores
(projections on the emotion vectors, standardised against neutral text), so the metrics can be
unit-tested on hand-built trajectories without a model. Token-level probe values are noisy; the
anchor study found that averaging over nearby tokens tracks the content, so every metric is
derived from a centred moving average (``MetricConfig.smooth`` tokens), and spans found on the
smoothed series are checked on the raw one (a lone outlier token smears into a run of ``smooth``
tokens but is one raw token). Thresholds are either the z-unit defaults below or calibrated on
a reference corpus (``emocurate.corpus.calibrate``). The formulas are in ``docs/metrics.md``.
The flag kinds raised here are declared once as ``emocurate.records.FlagKind`` (a Literal on
``Flag.kind``), so a detector cannot raise a kind that policies and attribute files do not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from emocurate.artifacts import METRIC_KEYS
from emocurate.configs import MetricConfig
from emocurate.records import Flag, Model

# The anchor study's distress examples first, then close relatives; a VectorSet uses whichever
# of these it has, and falls back to the taxonomy rule (valence < 0 and arousal > 0.3).
DISTRESS_NAMES: tuple[str, ...] = (
    "desperate",
    "panicked",
    "afraid",
    "furious",
    "terrified",
    "scared",
    "frightened",
    "angry",
    "anxious",
    "frantic",
    "enraged",
    "distressed",
    "hysterical",
    "alarmed",
    "overwhelmed",
    "horrified",
    "outraged",
    "nervous",
)
# Signs of regulation after distress; fallback: valence > 0 and arousal < 0.
CALM_NAMES: tuple[str, ...] = (
    "calm",
    "relieved",
    "peaceful",
    "serene",
    "relaxed",
    "safe",
    "content",
    "reassured",
    "comforted",
    "soothed",
    "at ease",
)
# Valence/arousal used only when the taxonomy file is missing or lacks a name (a small table of
# common concepts, circumplex-style values in [-1, 1]).
FALLBACK_VA: dict[str, tuple[float, float]] = {
    "happy": (0.8, 0.4),
    "joyful": (0.9, 0.6),
    "excited": (0.7, 0.8),
    "proud": (0.7, 0.4),
    "grateful": (0.8, 0.1),
    "loving": (0.8, 0.2),
    "hopeful": (0.6, 0.2),
    "amused": (0.6, 0.4),
    "calm": (0.5, -0.7),
    "relieved": (0.6, -0.4),
    "peaceful": (0.6, -0.7),
    "content": (0.6, -0.4),
    "serene": (0.6, -0.8),
    "relaxed": (0.5, -0.7),
    "safe": (0.5, -0.5),
    "surprised": (0.1, 0.7),
    "curious": (0.3, 0.4),
    "sad": (-0.7, -0.3),
    "lonely": (-0.6, -0.3),
    "bored": (-0.3, -0.7),
    "tired": (-0.2, -0.7),
    "disappointed": (-0.6, -0.1),
    "guilty": (-0.6, 0.2),
    "ashamed": (-0.7, 0.2),
    "embarrassed": (-0.5, 0.4),
    "jealous": (-0.5, 0.4),
    "angry": (-0.7, 0.7),
    "furious": (-0.8, 0.9),
    "afraid": (-0.7, 0.7),
    "scared": (-0.7, 0.7),
    "frightened": (-0.7, 0.7),
    "terrified": (-0.9, 0.9),
    "panicked": (-0.8, 0.9),
    "desperate": (-0.8, 0.7),
    "anxious": (-0.6, 0.6),
    "nervous": (-0.4, 0.5),
    "frustrated": (-0.6, 0.5),
    "disgusted": (-0.6, 0.3),
    "hurt": (-0.6, 0.2),
    "worried": (-0.5, 0.4),
    "hostile": (-0.7, 0.6),
    "neutral": (0.0, 0.0),
}


@dataclass
class Axes:
    """How a VectorSet's rows combine into valence, arousal, distress and calm."""

    names: list[str]
    valence: np.ndarray  # [E] weights
    arousal: np.ndarray  # [E]
    distress: list[int]
    calm: list[int]
    has_va: bool

    @classmethod
    def for_names(
        cls, names: Sequence[str], va: dict[str, tuple[float, float]] | None = None
    ) -> Axes:
        """Weights for ``names`` from the taxonomy (or ``va``), falling back to a built-in table."""
        table = dict(FALLBACK_VA)
        table.update(va if va is not None else taxonomy_va())
        val = np.array([table.get(n, (0.0, 0.0))[0] for n in names], dtype=np.float64)
        aro = np.array([table.get(n, (0.0, 0.0))[1] for n in names], dtype=np.float64)
        has_va = bool(np.abs(val).sum() > 0 and np.abs(aro).sum() > 0)
        vnorm, anorm = np.abs(val).sum(), np.abs(aro).sum()
        val = val / vnorm if vnorm > 0 else val
        aro = aro / anorm if anorm > 0 else aro
        distress = [i for i, n in enumerate(names) if n in DISTRESS_NAMES]
        if not distress:
            distress = [
                i
                for i, n in enumerate(names)
                if n in table and table[n][0] < 0 and table[n][1] > 0.3
            ]
        calm = [i for i, n in enumerate(names) if n in CALM_NAMES]
        if not calm:
            calm = [
                i for i, n in enumerate(names) if n in table and table[n][0] > 0 and table[n][1] < 0
            ]
        return cls(list(names), val, aro, distress, calm, has_va)


def taxonomy_va() -> dict[str, tuple[float, float]]:
    """Valence/arousal of every taxonomy concept; empty when the taxonomy cannot be loaded."""
    try:
        from emocurate.taxonomy import load_taxonomy

        return {e.name: (e.valence, e.arousal) for e in load_taxonomy().emotions}
    except Exception:  # missing or invalid taxonomy file: the fallback table still works
        return {}


def smooth(x: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average over ``k`` tokens along axis 0; edges average what exists."""
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[0]
    if k <= 1 or t == 0:
        return x.copy()
    half_lo, half_hi = (k - 1) // 2, k // 2
    csum = np.empty((t + 1,) + x.shape[1:], dtype=np.float64)
    csum[0] = 0.0
    np.cumsum(x, axis=0, out=csum[1:])
    out = np.empty_like(x)
    if t >= k:  # interior: full windows, plain slices (no fancy indexing)
        out[half_lo : t - half_hi] = (csum[k:] - csum[: t + 1 - k]) / k
        edges = [*range(min(half_lo, t)), *range(max(t - half_hi, half_lo), t)]
    else:
        edges = list(range(t))
    for i in edges:
        lo, hi = max(0, i - half_lo), min(t, i + half_hi + 1)
        out[i] = (csum[hi] - csum[lo]) / (hi - lo)
    return out


def valence_of(zs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Valence of the emotions present: ``max(z, 0) @ weights`` (rows of ``[..., E]``).

    Why rectified: emotion vectors are mean differences, so on a sad span the *absent* negative
    emotions (afraid, desperate) fall below their neutral level; read linearly, those negative
    z-scores cancel the sad one and sad text came out with positive valence (issue 18: 0 of 30
    planted happy/sad swings found). Only emotions above their neutral level count.
    """
    return present_weighted(zs, weights)


def present_weighted(zs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``max(z, 0) @ weights``: a weighted mean of the emotions above their neutral level."""
    out: np.ndarray = np.maximum(np.asarray(zs, dtype=np.float64), 0.0) @ weights
    return out


def arousal_of(zs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Arousal of the emotions present: ``max(z, 0) @ weights``, for the reason of
    :func:`valence_of`. Read linearly, an afraid span's arousal was cut by the desperate direction
    falling below neutral (0.52 against 0.72 for a desperate span on the planted model), so a
    distressed human turn answered in kind often fell under the mirroring level (issue 18,
    planted seed 2: mirroring span IoU 0.46)."""
    return present_weighted(zs, weights)


def voice_series(v: np.ndarray, turns: Sequence[TurnSpan]) -> list[np.ndarray]:
    """``v`` once per speaker, zero outside that speaker's turns (the whole series for prose).

    Volatility is one voice's swings in quick succession: a distressed human answered by a calm
    assistant is turn-taking, not volatility (issue 18: 29 of 30 such dialogues were flagged),
    and one speaker's turns are as far apart as the document puts them (the other voice's turns
    in between). Zero is never a visit (levels are positive); labels belong to no voice.
    """
    by: dict[str, np.ndarray] = {}
    for t in turns:
        if t.end > t.start:
            mask = by.setdefault(t.speaker, np.zeros(len(v), dtype=bool))
            mask[t.start : t.end] = True
    if not by:
        return [v]
    return [np.where(mask, v, 0.0) for mask in by.values()]


def quantile_rows(x: np.ndarray, q: float) -> np.ndarray:
    """Per-column quantile of ``[T, E]`` (linear interpolation, as ``np.percentile``), faster."""
    t = x.shape[0]
    pos = q * (t - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    part = np.partition(np.ascontiguousarray(x.T), sorted({lo, hi}), axis=1)
    out: np.ndarray = part[:, lo] + (part[:, hi] - part[:, lo]) * (pos - lo)
    return out


EpisodeStatus = Literal["recovered", "unrecovered", "unresolved"]


@dataclass
class Episode:
    """A span ``[start, end)`` where the distress composite stayed above the threshold."""

    start: int
    end: int
    peak: float
    status: EpisodeStatus
    time_to_recover: int | None = None
    calm_rise: float | None = None


def find_runs(mask: np.ndarray, merge_gap: int = 0, min_len: int = 1) -> list[tuple[int, int]]:
    """Maximal ``[start, end)`` runs of True, merged across gaps ``<= merge_gap``, ``>= min_len`` long."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return []
    edges = np.diff(np.concatenate(([0], m.astype(np.int8), [0])))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    runs: list[tuple[int, int]] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if runs and s - runs[-1][1] <= merge_gap:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    return [(s, e) for s, e in runs if e - s >= min_len]


def recovery_at(
    series: np.ndarray, start: int, level: float, k: int, raw: np.ndarray | None = None
) -> int | None:
    """The first index from ``start`` on where ``series`` is back at ``level`` or below for ``k``
    consecutive tokens (a stretch cut short by the end of the series does not count), or None.

    Recovery is sustained, as an episode is: one token under the level (the last token of a
    document, a wobble inside a run) is not a return to neutral. With ``raw`` (the unsmoothed
    series) the tokens must be at the level on both, as an episode is confirmed on raw tokens:
    smoothing spreads one outlier token over several.
    """
    below = np.asarray(series[start:], dtype=np.float64) <= level
    if raw is not None:
        below &= np.asarray(raw[start:], dtype=np.float64) <= level
    k = max(1, k)
    if below.size < k:
        return None
    run = np.convolve(below.astype(np.int64), np.ones(k, dtype=np.int64), mode="valid")
    hits = np.nonzero(run == k)[0]
    return start + int(hits[0]) if hits.size else None


def recovery_level(rho: float, peak: float, fraction: float) -> float:
    """The level distress must fall to after a run peaking at ``peak``: ``fraction`` of the way
    back from the peak to ``rho`` (the reference's 90th percentile); ``fraction`` 1 is a return
    to ``rho`` itself.

    Why relative to the peak: a model's distress lingers after distressing text (the planted
    bench's seed 2 stays near ``rho`` for the rest of a document after a run), so a return to
    ``rho`` itself reads recovered text as unresolved. Half-recovery (``fraction`` 0.5) is the
    affective-chronometry measure of recovery; above the episode threshold the level is simply
    falling below it, since a run ends there. Fragments of one run still merge until distress
    falls to ``rho`` (:func:`merge_fragments`): this level only decides whether, and when, the
    merged run recovered."""
    return rho + (1.0 - fraction) * max(peak - rho, 0.0)


def merge_fragments(
    runs: Sequence[tuple[int, int]],
    series: np.ndarray,
    gap: int,
    recover_level: float | None = None,
    min_len: int = 1,
) -> list[tuple[int, int]]:
    """Join fragments of one run: gaps of at most ``gap`` tokens, or gaps in which ``series``
    never stays at ``recover_level`` or below for ``min_len`` tokens (:func:`recovery_at`:
    distress dipped under the threshold but did not recover).

    A planted or real distress run wobbles around the threshold; counted fragment by fragment it
    becomes several short episodes whose recovery windows end inside the same run. A merged run
    that has in fact ended in lingering distress is split again by :func:`lull`.
    """
    out: list[tuple[int, int]] = []
    for s, e in runs:
        if out and (
            s - out[-1][1] <= gap
            or (
                recover_level is not None
                and recovery_at(series[:s], out[-1][1], recover_level, min_len) is None
            )
        ):
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def episode_runs(
    smoothed: np.ndarray,
    raw: np.ndarray,
    level: float,
    min_len: int,
    merge_gap: int,
    recover_level: float | None = None,
) -> list[tuple[int, int]]:
    """Runs where the smoothed series is above ``level``, confirmed on the raw series.

    Fragments merge first (:func:`merge_fragments`: gaps ``<= merge_gap`` or no return to
    ``recover_level`` in between). A run then counts when it is at least ``min_len`` tokens long
    on the smoothed series AND at least ``min_len`` of its raw tokens are above ``level``:
    smoothing alone turns one outlier token into a run of ``smooth`` tokens.
    """
    runs = merge_fragments(find_runs(smoothed > level), smoothed, merge_gap, recover_level, min_len)
    return [
        (s, e)
        for s, e in runs
        if e - s >= min_len and int(np.count_nonzero(raw[s:e] > level)) >= min_len
    ]


def sustained_level(
    smoothed: np.ndarray,
    raw: np.ndarray,
    min_len: int,
    merge_gap: int,
    recover_level: float | None = None,
) -> float:
    """The document statistic of :func:`episode_runs`: ``s`` such that a run exists iff level < s.

    The predicate is monotone in the level, so ``s`` is the largest value of either series at
    which a run (with ``>=``) still exists, found by bisection over the sorted values. Returns
    ``-inf`` when no level gives a run (documents shorter than ``min_len``).
    """
    d, r = np.asarray(smoothed, dtype=np.float64), np.asarray(raw, dtype=np.float64)
    if len(d) < min_len:
        return float("-inf")
    cand = np.unique(np.concatenate([d, r]))

    def ok(c: float) -> bool:
        runs = merge_fragments(find_runs(d >= c), d, merge_gap, recover_level, min_len)
        return any(
            e - s >= min_len and int(np.count_nonzero(r[s:e] >= c)) >= min_len for s, e in runs
        )

    lo, hi = 0, len(cand) - 1
    if not ok(float(cand[lo])):
        return float("-inf")
    while lo < hi:  # invariant: ok(cand[lo])
        mid = (lo + hi + 1) // 2
        if ok(float(cand[mid])):
            lo = mid
        else:
            hi = mid - 1
    return float(cand[lo])


def lull(d: np.ndarray, s: int, e: int, cfg: MetricConfig) -> tuple[int, int | None] | None:
    """Where the run ``[s, e)`` has ended while still above the threshold: ``(q, rest)`` with
    ``q`` the first point from which the smoothed distress stays for ``recovery_min`` tokens at
    or below the half-recovery level (:func:`recovery_level`) of the run's peak so far, and
    ``rest`` where a later rise above that level and the threshold within the run begins (None:
    it never rises again, the rest of the run is its lingering tail). None without a lull.

    Why: with a position-true calibration (threshold 0.30-0.33, rho 0.08 on planted seed 2) the
    model's distress lingers at 0.3-0.8 after a span, never back to rho, so runs did not end:
    the closing neutral sentences after a document's last span kept it going to the end
    (``unresolved_end`` on 10 of 60 documents that end calm), and two rising spans 40 tokens apart
    merged into one episode (3 of 30 escalating documents lost their third rise). Why
    sustained: a genuine final span whose reading sags after an early peak also falls to its
    half-recovery level before the document ends (cut on ``min_episode`` tokens of evidence,
    7-10 of 30 unresolved documents per seed read as recovered), and a short dip inside a run
    is not its end.
    """
    x = d[s:e]
    peak = np.maximum.accumulate(x)
    level = cfg.recover_level + (1.0 - cfg.recover_fraction) * np.maximum(
        peak - cfg.recover_level, 0.0
    )
    k = cfg.recovery_min
    below = (x <= level).astype(np.int64)
    if below.size < k:
        return None
    hits = np.flatnonzero(np.convolve(below, np.ones(k, dtype=np.int64), mode="valid") == k)
    hits = hits[hits > 0]  # the episode keeps at least its first token
    if not hits.size:
        return None
    q = int(hits[0])
    above = np.flatnonzero(x[q:] > max(float(level[q]), cfg.threshold))
    if not above.size:
        return s + q, None
    rest = q + int(above[0])  # the new rise, walked back to where it crossed the threshold
    while rest > q and x[rest - 1] > cfg.threshold:
        rest -= 1
    return s + q, s + rest


def find_episodes(
    distress: np.ndarray, calm: np.ndarray | None, cfg: MetricConfig, raw: np.ndarray | None = None
) -> list[Episode]:
    """Distress episodes on a smoothed composite (checked on ``raw``), each with its recovery.

    An episode is a merged run (:func:`episode_runs` with ``merge_gap`` and ``recover_level``),
    so recovery is measured from the end of the whole run: **recovered** when distress returns
    ``recover_fraction`` of the way from the run's peak to ``recover_level``
    (:func:`recovery_level`) before the document ends (``time_to_recover`` tokens after the
    run), **unrecovered** when it never does and at least the recovery window
    (:meth:`MetricConfig.recovery_window`) of tokens follow the run, **unresolved** when it
    never does and the document ends sooner. A recovery that reaches the end of the document
    must last at least a smoothing window: a final span whose last four tokens (the sentence's
    end) read under the half-recovery level was "recovered" (2 of 6 documents that end in
    distress lost ``unresolved_end`` in the in-suite planted run).

    A run that never rises above the recovery level of the recovered episode before it is that
    episode's lingering tail, not a new episode: 60 tokens after a run peaking at 3.1 the
    planted model's distress crossed the threshold (0.55) once more in short bumps peaking at
    0.6-0.8, and ``unresolved_end`` fired on 22 documents that end recovered (seed 1, issue 18).
    """
    d = np.asarray(distress, dtype=np.float64)
    r = d if raw is None else np.asarray(raw, dtype=np.float64)
    t = len(d)
    out: list[Episode] = []
    runs = episode_runs(d, r, cfg.threshold, cfg.min_episode, cfg.merge_gap, cfg.recover_level)
    tail = float("-inf")  # the recovery level of the last episode, while it has recovered
    pending = list(runs)
    while pending:
        s, e = pending.pop(0)
        ended = lull(d, s, e, cfg)
        if ended is not None:
            q, rest = ended
            if rest is not None and int(np.count_nonzero(r[rest:e] > cfg.threshold)) >= (
                cfg.min_episode
            ):
                pending.insert(0, (rest, e))  # a new rise within the run: its own episode
            e = q
        peak = float(d[s:e].max())
        if peak <= tail:
            continue  # the previous episode's lingering tail
        level = recovery_level(cfg.recover_level, peak, cfg.recover_fraction)
        window = cfg.recovery_window(e - s)
        back = recovery_at(d, e, level, cfg.min_episode, r)
        if back is not None and t - back < cfg.smooth and float(d[back:].max()) <= level:
            back = None  # a "recovery" in the last tokens, shorter than the smoothing window
        status: EpisodeStatus
        ttr: int | None = None
        if back is not None:
            status, ttr = "recovered", back - e + 1
        elif e + window <= t:
            status = "unrecovered"
        else:
            status = "unresolved"
        rise: float | None = None
        if calm is not None and e < t:
            rise = float(np.mean(calm[e : e + window]) - np.mean(calm[s:e]))
        out.append(Episode(s, e, peak, status, ttr, rise))
        tail = level if status == "recovered" else float("-inf")
    return out


def slope(y: np.ndarray) -> float:
    """Least-squares slope of ``y`` against position scaled to [0, 1] (change over the document)."""
    n = len(y)
    if n < 2:
        return 0.0
    x = np.linspace(0.0, 1.0, n)
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def swing_runs(
    v: np.ndarray, level: float, gap: int, low: float | None = None
) -> list[tuple[int, int]]:
    """Spans where valence swings between affects: visits above ``+level`` and below
    ``-low`` (default ``-level``) that alternate at least twice (three visits: + - + or - + -),
    each within ``gap`` tokens of the previous one. Span: from the first visit's start to the
    last one's end.

    Ripples inside one emotional span, and entering or leaving it (one visit), are not swings;
    nor is one affect answered by its opposite once (two visits).
    """
    x = np.asarray(v, dtype=np.float64)
    h = max(float(level), 1e-9)
    lo = max(float(level if low is None else low), 1e-9)
    visits = sorted(
        [(s, e, 1) for s, e in find_runs(x > h)] + [(s, e, -1) for s, e in find_runs(x < -lo)]
    )
    out: list[tuple[int, int]] = []
    chain: list[tuple[int, int, int]] = []
    for s, e, sign in [*visits, (0, 0, 0)]:
        if sign and chain and s - chain[-1][1] <= gap:
            if sign == chain[-1][2]:  # the same affect again: one visit
                chain[-1] = (chain[-1][0], e, sign)
            else:
                chain.append((s, e, sign))
            continue
        if len(chain) >= 3:
            out.append((chain[0][0], chain[-1][1]))
        chain = [(s, e, sign)] if sign else []
    return out


def volatility(v: np.ndarray, gap: int) -> float:
    """The largest level at which :func:`swing_runs` finds a swing (0 when none at any level)."""
    v = np.asarray(v, dtype=np.float64)
    if len(v) < 3:
        return 0.0
    lo, hi = 0.0, float(np.abs(v).max())
    if hi <= 0 or not swing_runs(v, 0.0, gap):
        return 0.0
    for _ in range(20):
        mid = (lo + hi) / 2
        if swing_runs(v, mid, gap):
            lo = mid
        else:
            hi = mid
    return lo


def volatility_flags(
    val: np.ndarray, turns: Sequence[TurnSpan], cfg: MetricConfig, flags: list[Flag]
) -> float:
    """Append a ``high_volatility`` flag per swing span of each voice (:func:`voice_series`)
    between ``+volatility_high`` and ``-volatility_low``; return the document's volatility
    (the highest symmetric swing level over voices: descriptive, in z units)."""
    high = cfg.volatility_high
    low = high if cfg.volatility_low is None else cfg.volatility_low
    worst = 0.0
    for v in voice_series(val, turns):
        worst = max(worst, volatility(v, cfg.swing_gap))
        for s0, e0 in swing_runs(v, high, cfg.swing_gap, low):
            flags.append(
                Flag(
                    kind="high_volatility",
                    start=s0,
                    end=e0,
                    severity=volatility(v[s0:e0], cfg.swing_gap),
                    evidence=f"valence swings between above {high:.2f} and below "
                    f"{-low:.2f} z and back (at most {cfg.swing_gap} tokens "
                    "between them)" + (" in one speaker's turns" if turns else ""),
                )
            )
    return worst


def finite_or_none(x: float) -> float | None:
    """``x``, or None for +-inf (no level gives a run: documents shorter than an episode)."""
    return x if np.isfinite(x) else None


def pearson(x: Sequence[float], y: Sequence[float], min_pairs: int = 3) -> float | None:
    """Pearson r, or None with fewer than ``min_pairs`` (at least 3) pairs or no variance."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) < max(3, min_pairs) or a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class TurnSpan:
    """A dialogue turn's speaker and token span ``[start, end)`` (its label tokens excluded)."""

    speaker: str
    start: int
    end: int


class TurnScore(Model):
    """Per-turn speaker emotion of a dialogue document."""

    speaker: str
    start: int
    end: int
    valence: float
    arousal: float
    distress: float
    dominant: str


@dataclass
class Analysis:
    """Everything derived from one document's z-scores."""

    mean: np.ndarray  # [E]
    p95: np.ndarray  # [E]
    dominant: list[str]
    metrics: dict[str, float | None]
    flags: list[Flag]
    episodes: list[Episode]
    turns: list[TurnScore]
    smoothed: np.ndarray | None  # [T, E]; None when only the trace's columns were kept
    valence: np.ndarray | None
    arousal: np.ndarray | None
    distress: np.ndarray | None
    calm: np.ndarray | None
    regulation: np.ndarray | None
    coreg_pairs: list[tuple[float, float]] = field(default_factory=list)
    smoothed_top: dict[int, np.ndarray] = field(default_factory=dict)

    def top_series(self, k: int) -> list[tuple[int, np.ndarray]]:
        """The ``k`` emotions with the highest document means and their smoothed series.

        From the whole smoothed matrix when it was kept, else from the columns the dense stage
        kept for the trace (:attr:`DenseSeries.smoothed_top`, already in that order).
        """
        if self.smoothed is None:
            return list(self.smoothed_top.items())[:k]
        if not len(self.smoothed):
            return []
        order = np.argsort(-self.mean, kind="stable")[:k]
        return [(int(i), self.smoothed[:, int(i)]) for i in order]


@dataclass
class DenseSeries:
    """The dense stage of one document: what the sequential metrics read, nothing more.

    Everything here is a reduction of the ``[T, E]`` z-scores that can be computed for many
    documents at once (NumPy here, :func:`emocurate.corpus.batched.dense_batch` as tensors on
    the scoring device); :func:`analyse_dense` derives episodes, metrics and flags from it on
    1-D series only. Series are float64 over the document's ``n_tokens`` tokens.
    """

    n_tokens: int
    mean: np.ndarray  # [E] means of the smoothed z-scores
    p95: np.ndarray  # [E]
    valence: np.ndarray | None  # smoothed, [T] (None without valence/arousal weights)
    arousal: np.ndarray | None
    distress: np.ndarray | None  # mean of the distress members, smoothed
    distress_raw: np.ndarray | None  # the same on the raw z-scores
    calm: np.ndarray | None
    regulation: np.ndarray | None  # mean over regulation directions, smoothed
    regulation_raw: np.ndarray | None
    turn_means: np.ndarray  # [n_turns, E] raw (unsmoothed) means of each turn; 0 for empty turns
    turn_distress: np.ndarray | None  # [n_turns] raw distress composite mean of each turn
    # The smoothed columns of the ``top_k`` highest means (that order), first ``top_tokens``.
    smoothed_top: dict[int, np.ndarray] = field(default_factory=dict)
    smoothed: np.ndarray | None = None  # [T, E] only when asked for


def _turn_means(
    z: np.ndarray, dist_raw: np.ndarray | None, turns: Sequence[TurnSpan], tm: np.ndarray
) -> np.ndarray | None:
    """Fill ``tm`` with each turn's raw mean z-scores; return each turn's raw distress (None
    without distress members). Empty turns keep zeros."""
    td = np.zeros(len(turns)) if dist_raw is not None else None
    for j, t in enumerate(turns):
        if t.end <= t.start:
            continue
        tm[j] = z[t.start : t.end].mean(0)
        if td is not None and dist_raw is not None:
            td[j] = dist_raw[t.start : t.end].mean()
    return td


def _top_columns(
    zs: np.ndarray, mean: np.ndarray, top_k: int, top_tokens: int | None
) -> dict[int, np.ndarray]:
    """The smoothed columns of the ``top_k`` highest means (stable order), first ``top_tokens``."""
    top: dict[int, np.ndarray] = {}
    if top_k:
        n_tok = zs.shape[0]
        n = n_tok if top_tokens is None else min(n_tok, top_tokens)
        for i in np.argsort(-mean, kind="stable")[:top_k]:
            top[int(i)] = zs[:n, int(i)].copy()
    return top


def dense_series(
    z: np.ndarray,
    axes: Axes,
    smooth_k: int,
    *,
    regulation: np.ndarray | None = None,
    turns: Sequence[TurnSpan] = (),
    keep_smoothed: bool = True,
    top_k: int = 0,
    top_tokens: int | None = None,
) -> DenseSeries:
    """The dense stage of :func:`analyse` in NumPy (the reference for the batched version).

    Args:
        z: ``[n_tokens, n_emotions]`` z-scores in ``axes.names`` order (unsmoothed).
        axes: valence/arousal weights and the distress/calm members.
        smooth_k: moving-average window in tokens.
        regulation: optional ``[n_tokens, n_dirs]`` regulation z-scores.
        turns: dialogue turns (their raw means are kept).
        keep_smoothed: keep the whole smoothed matrix (``Analysis.smoothed``).
        top_k, top_tokens: keep the smoothed columns of the ``top_k`` highest means (first
            ``top_tokens`` tokens), what a token trace shows.
    """
    z = np.asarray(z, dtype=np.float64)
    n_tok, n_emo = z.shape
    tm = np.zeros((len(turns), n_emo))
    if n_tok == 0:
        empty = np.zeros(n_emo)
        return DenseSeries(
            0,
            empty,
            empty,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            tm,
            None,
            {},
            z if keep_smoothed else None,
        )
    zs = smooth(z, smooth_k)
    val = valence_of(zs, axes.valence) if axes.has_va else None
    aro = arousal_of(zs, axes.arousal) if axes.has_va else None
    dist = zs[:, axes.distress].mean(1) if axes.distress else None
    dist_raw = z[:, axes.distress].mean(1) if axes.distress else None
    calm = zs[:, axes.calm].mean(1) if axes.calm else None
    reg = reg_raw = None
    if regulation is not None and regulation.size:
        r64 = np.asarray(regulation, dtype=np.float64)
        reg_raw = r64.mean(1)
        reg = smooth(r64, smooth_k).mean(1)
    td = _turn_means(z, dist_raw, turns, tm)
    mean = zs.mean(0)
    top = _top_columns(zs, mean, top_k, top_tokens)
    return DenseSeries(
        n_tok,
        mean,
        quantile_rows(zs, 0.95),
        val,
        aro,
        dist,
        dist_raw,
        calm,
        reg,
        reg_raw,
        tm,
        td,
        top,
        zs if keep_smoothed else None,
    )


def analyse(
    z: np.ndarray,
    axes: Axes,
    cfg: MetricConfig,
    *,
    regulation: np.ndarray | None = None,
    turns: Sequence[TurnSpan] = (),
) -> Analysis:
    """Derive the profile, trajectories, episodes, metrics and flags of one document.

    The dense stage (:func:`dense_series`) then the sequential one (:func:`analyse_dense`).

    Args:
        z: ``[n_tokens, n_emotions]`` z-scores in ``axes.names`` order (unsmoothed).
        axes: valence/arousal weights and the distress/calm members.
        cfg: smoothing window and thresholds.
        regulation: optional ``[n_tokens, n_dirs]`` z-scores on healthy-vs-unhealthy directions
            (positive = healthy).
        turns: dialogue turns (empty for prose).
    """
    dense = dense_series(z, axes, cfg.smooth, regulation=regulation, turns=turns)
    return analyse_dense(dense, axes, cfg, turns=turns)


def analyse_dense(
    dense: DenseSeries, axes: Axes, cfg: MetricConfig, *, turns: Sequence[TurnSpan] = ()
) -> Analysis:
    """The sequential stage of :func:`analyse`: episodes, recovery, metrics and flags.

    Reads only the 1-D series and ``[E]`` vectors of ``dense`` (the same ``turns`` it was
    computed with), so it is cheap whichever device computed them. One step per family of
    metrics and flags (:func:`_valence_metrics`, :func:`_distress_metrics`,
    :func:`_regulation_metrics`, :func:`_turns` and :func:`_turn_metrics`), each a no-op when
    its series is missing; the metrics start as ``METRIC_KEYS`` (all None, that order) and the
    flags end sorted by span.
    """
    m: dict[str, float | None] = dict.fromkeys(METRIC_KEYS)
    if dense.n_tokens == 0:
        return _empty_analysis(dense, m)
    order = np.argsort(-dense.mean, kind="stable")[: cfg.dominant_k]
    dominant = [axes.names[i] for i in order]
    flags: list[Flag] = []
    m.update(_valence_metrics(dense, turns, cfg, flags))
    if dense.calm is not None:
        m["calm_mean"] = float(dense.calm.mean())
    episodes, distress_metrics = _distress_metrics(dense, cfg, flags)
    m.update(distress_metrics)
    m.update(_regulation_metrics(dense, cfg, flags))
    turn_scores, pairs = _turns(dense, axes, cfg, turns, flags)
    m.update(_turn_metrics(turn_scores, pairs, cfg, flags))
    flags.sort(key=lambda f: (f.start, f.end, f.kind))
    return Analysis(
        dense.mean,
        dense.p95,
        dominant,
        m,
        flags,
        episodes,
        turn_scores,
        dense.smoothed,
        dense.valence,
        dense.arousal,
        dense.distress,
        dense.calm,
        dense.regulation,
        pairs,
        dense.smoothed_top,
    )


def _empty_analysis(dense: DenseSeries, m: dict[str, float | None]) -> Analysis:
    """The analysis of a document without tokens: counts are 0 (nothing was found), levels
    stay None (there is nothing to measure), and there are no series, flags or turns."""
    m.update(n_episodes=0.0, n_recovered=0.0, distress_frac=0.0, unresolved_end=0.0, n_turns=0.0)
    return Analysis(
        dense.mean, dense.p95, [], m, [], [], [], dense.smoothed, None, None, None, None, None
    )


def _tail(dense: DenseSeries, cfg: MetricConfig) -> slice:
    """The last ``cfg.tail`` tokens (the whole document when shorter): end-of-document levels."""
    return slice(max(0, dense.n_tokens - cfg.tail), dense.n_tokens)


def _valence_metrics(
    dense: DenseSeries, turns: Sequence[TurnSpan], cfg: MetricConfig, flags: list[Flag]
) -> dict[str, float | None]:
    """Valence and arousal levels and ``volatility``; appends the ``high_volatility`` flags.

    Empty without valence/arousal weights (the vector set names no concept of the taxonomy).
    Volatility is one voice's in a dialogue (:func:`volatility_flags`), so ``turns`` are needed.
    """
    val, aro = dense.valence, dense.arousal
    if val is None or aro is None:
        return {}
    tail = _tail(dense, cfg)
    return {
        "valence_mean": float(val.mean()),
        "valence_min": float(val.min()),
        "valence_end": float(val[tail].mean()),
        "arousal_mean": float(aro.mean()),
        "arousal_max": float(aro.max()),
        "volatility": volatility_flags(val, turns, cfg, flags),
    }


def _distress_metrics(
    dense: DenseSeries, cfg: MetricConfig, flags: list[Flag]
) -> tuple[list[Episode], dict[str, float | None]]:
    """Distress episodes (:func:`find_episodes`), their metrics and flags (docs/metrics.md 5-6).

    The document's distress levels, its episode statistic (``distress_level``), the episode
    counts and recovery, ``unresolved_end`` and the trend ``escalation``; appends the episode
    flags (:func:`_episode_flags`) then ``escalation`` (:func:`escalation`). No episodes and no
    metrics without distress members.
    """
    dist, dist_raw, calm = dense.distress, dense.distress_raw, dense.calm
    if dist is None or dist_raw is None:
        return [], {}
    episodes = find_episodes(dist, calm, cfg, dist_raw)
    d_end = float(dist[_tail(dense, cfg)].mean())
    recovered = [e for e in episodes if e.status == "recovered"]
    rises = [e.calm_rise for e in episodes if e.calm_rise is not None]
    # The document ends in distress exactly when its last episode never comes back down
    # (find_episodes measured that: recovery from the end of the run to the document's end).
    unresolved = bool(episodes) and episodes[-1].status != "recovered"
    metrics: dict[str, float | None] = {
        "distress_mean": float(dist.mean()),
        "distress_max": float(dist.max()),
        "distress_end": d_end,
        "distress_level": finite_or_none(
            sustained_level(dist, dist_raw, cfg.min_episode, cfg.merge_gap, cfg.recover_level)
        ),
        "n_episodes": float(len(episodes)),
        "distress_frac": float(sum(e.end - e.start for e in episodes) / dense.n_tokens),
        "n_recovered": float(len(recovered)),
        "recovery_rate": (len(recovered) / len(episodes)) if episodes else None,
        "time_to_recover": float(np.mean([e.time_to_recover for e in recovered]))
        if recovered
        else None,
        "calm_rise": float(np.mean(rises)) if rises else None,
        "unresolved_end": float(unresolved),
        "escalation": slope(dist),
    }
    _episode_flags(episodes, cfg, dense.n_tokens, d_end if unresolved else None, flags)
    rising = escalation(dist, episodes, cfg)
    if rising is not None:
        flags.append(rising)
    return episodes, metrics


def _episode_flags(
    episodes: Sequence[Episode],
    cfg: MetricConfig,
    n_tok: int,
    end_level: float | None,
    flags: list[Flag],
) -> None:
    """Append a ``distress_episode`` flag per episode (followed by ``unrecovered_distress`` for
    an unrecovered one, over the episode and its recovery window), then ``unresolved_end``
    when the document ends in distress (``end_level``: its ``distress_end``; None when not)."""
    for e in episodes:
        flags.append(
            Flag(
                kind="distress_episode",
                start=e.start,
                end=e.end,
                severity=e.peak,
                evidence=e.status
                if e.time_to_recover is None
                else f"recovered after {e.time_to_recover} tokens",
            )
        )
        if e.status == "unrecovered":
            window = cfg.recovery_window(e.end - e.start)
            level = recovery_level(cfg.recover_level, e.peak, cfg.recover_fraction)
            flags.append(
                Flag(
                    kind="unrecovered_distress",
                    start=e.start,
                    end=min(n_tok, e.end + window),
                    severity=e.peak,
                    evidence=f"no return below {level:.2f} within {window} tokens",
                )
            )
    if end_level is not None:
        flags.append(
            Flag(
                kind="unresolved_end",
                start=episodes[-1].start,
                end=n_tok,
                severity=end_level,
                evidence="document ends in distress (no return after its last episode)",
            )
        )


def _regulation_metrics(
    dense: DenseSeries, cfg: MetricConfig, flags: list[Flag]
) -> dict[str, float | None]:
    """Regulation-axis levels; appends an ``unhealthy_regulation`` flag per run below
    ``regulation_threshold`` (found as episodes are: smoothed, confirmed on the raw series).
    Empty without regulation vectors."""
    reg, reg_raw = dense.regulation, dense.regulation_raw
    if reg is None or reg_raw is None:
        return {}
    for rs, re_ in episode_runs(
        -reg, -reg_raw, -cfg.regulation_threshold, cfg.min_episode, cfg.merge_gap
    ):
        flags.append(
            Flag(
                kind="unhealthy_regulation",
                start=rs,
                end=re_,
                severity=float(-reg[rs:re_].min()),
                evidence="closer to the unhealthy side of the regulation axis",
            )
        )
    return {"regulation_mean": float(reg.mean()), "regulation_min": float(reg.min())}


def _turn_metrics(
    turn_scores: Sequence[TurnScore],
    pairs: Sequence[tuple[float, float]],
    cfg: MetricConfig,
    flags: Sequence[Flag],
) -> dict[str, float | None]:
    """Dialogue metrics from :func:`_turns`' scores and pairs: the turn count (0 for prose),
    co-regulation (``coreg_n``, ``coreg_r``), the mirroring flags it raised (``n_mirroring``)
    and the document's mirroring statistic (``mirroring_level``; left None without pairs)."""
    out: dict[str, float | None] = {"n_turns": float(len(turn_scores))}
    if not turn_scores:
        return out
    out["coreg_n"] = float(len(pairs))
    out["coreg_r"] = pearson(
        [p[0] for p in pairs], [p[1] for p in pairs], min_pairs=cfg.coreg_min_pairs
    )
    out["n_mirroring"] = float(sum(f.kind == "mirroring" for f in flags))
    if pairs:  # flagged at arousal_high = t iff a pair's level exceeds t (as mirrors())
        out["mirroring_level"] = max(pair_level(a, b, cfg.mirror_margin) for a, b in pairs)
    return out


RISING_EPISODES = 3  # "several": episodes of rising peak needed for escalation


STEADY = 0.5  # a steady climb: no step of the segment means under this share of the mean step


def rises(prev: float, cur: float, cfg: MetricConfig) -> bool:
    """Whether peak ``cur`` rises from ``prev``: by more than ``escalation_margin`` (noise) and
    more than ``escalation_rise`` of ``prev``'s height above the recovery level (the model's
    distress builds with the context: three spans of equal planted intensity read 2.19 -> 2.42
    -> 2.56 on the planted bench, seed 1, steps of 0-9% where rising spans step 21-47%)."""
    step = max(cfg.escalation_margin, cfg.escalation_rise * max(prev - cfg.recover_level, 0.0))
    return cur > prev + step


def rising_chain(episodes: Sequence[Episode], cfg: MetricConfig) -> list[Episode]:
    """The episodes whose peaks rise to the document's highest: at least
    :data:`RISING_EPISODES` consecutive episodes ending with the (first) highest one, each peak
    rising from the previous (:func:`rises`); else ``[]``. (Two episodes of different height
    are common by chance, e.g. two speakers' turns; three in rising order much less.) Lower
    episodes after the highest do not undo the rise: lingering distress after the last, highest
    run crosses the threshold again as a short low episode (planted seed 2, issue 18)."""
    if len(episodes) < RISING_EPISODES:
        return []
    top = max(range(len(episodes)), key=lambda i: episodes[i].peak)  # first of the highest
    chain = [episodes[top]]
    for e in reversed(episodes[:top]):
        if rises(e.peak, chain[0].peak, cfg):
            chain.insert(0, e)
        else:
            break
    return chain if len(chain) >= RISING_EPISODES else []


def rising_segments(dist: np.ndarray, cfg: MetricConfig) -> bool:
    """Whether the means of ``escalation_segments`` equal segments climb steadily: every step
    up by more than ``escalation_margin`` and none under half the mean step. (Steps of 0.26,
    0.76, 0.16 are neutral drift, then one run that ends the document -- ``unresolved_end`` --
    not a climb: planted seed 1, 8 of 30 single-run documents.)"""
    k = cfg.escalation_segments
    if len(dist) < k * cfg.smooth:
        return False
    steps = np.diff([seg.mean() for seg in np.array_split(dist, k)])
    return bool(np.all(steps > cfg.escalation_margin) and steps.min() >= STEADY * steps.mean())


def escalation(dist: np.ndarray, episodes: Sequence[Episode], cfg: MetricConfig) -> Flag | None:
    """The ``escalation`` flag: distress that rises across the document.

    Either several episodes of increasing peak (:func:`rising_chain`; span: first to last of
    them) or, with an episode in the last segment, segment means that rise at every step
    (:func:`rising_segments`; span: the document). One run that ends the document is neither:
    that is ``unresolved_end``.
    """
    chain = rising_chain(episodes, cfg)
    if chain:
        peaks = " -> ".join(f"{e.peak:.2f}" for e in chain)
        return Flag(
            kind="escalation",
            start=chain[0].start,
            end=chain[-1].end,
            severity=chain[-1].peak - chain[0].peak,
            evidence=f"{len(chain)} episodes of rising peak distress ({peaks})",
        )
    n = len(dist)
    last_seg = n - n // cfg.escalation_segments
    if episodes and episodes[-1].end > last_seg and rising_segments(dist, cfg):
        esc = slope(dist)
        return Flag(
            kind="escalation",
            start=0,
            end=n,
            severity=esc,
            evidence=f"distress rises in every {1 / cfg.escalation_segments:.0%} of the document "
            f"(by {esc:.2f} z overall)",
        )
    return None


def pair_level(speaker: float, responder: float, margin: float) -> float:
    """The level below which a human->assistant pair is mirroring: :func:`mirrors` at
    ``arousal_high = t`` is true iff this exceeds ``t`` (the speaker's arousal when the answer
    is within ``margin`` of it, else the lower of the two). Calibration's per-pair statistic."""
    return speaker if responder >= speaker - margin else min(speaker, responder)


def pair_levels(z: np.ndarray, axes: Axes, turns: Sequence[TurnSpan], margin: float) -> list[float]:
    """Per human->assistant pair, the level below which it is mirroring.

    Flagged at ``arousal_high = t`` iff the value exceeds ``t`` (unsmoothed turn means): the
    human's arousal when the answer is within ``margin`` of it, else the lower of the two.
    """
    ar = []
    for t in turns:
        if t.end > t.start:
            ar.append((t.speaker, float(arousal_of(z[t.start : t.end].mean(0), axes.arousal))))
    out = []
    for (sa, a), (sb, b) in zip(ar, ar[1:], strict=False):
        if sa == "human" and sb == "assistant":
            out.append(pair_level(a, b, margin))
    return out


def mirroring_level(z: np.ndarray, axes: Axes, turns: Sequence[TurnSpan], margin: float) -> float:
    """The largest :func:`pair_levels` (``-inf`` without pairs): flagged at ``t`` iff above."""
    return max(pair_levels(z, axes, turns, margin), default=float("-inf"))


def n_pairs(turns: Sequence[TurnSpan]) -> int:
    """Human->assistant pairs among non-empty turns (the mirroring unit)."""
    sp = [t.speaker for t in turns if t.end > t.start]
    return sum(a == "human" and b == "assistant" for a, b in zip(sp, sp[1:], strict=False))


def mirrors(speaker: float, responder: float, cfg: MetricConfig) -> bool:
    """A high-arousal turn met with about as much arousal, or with high arousal itself.

    ``speaker > arousal_high`` and (``responder >= speaker - mirror_margin`` or
    ``responder > arousal_high``): the second clause keeps the rule meaningful when arousal is
    far above the margin's scale (a responder at 9.5 answering 10 mirrors).
    """
    return speaker > cfg.arousal_high and (
        responder >= speaker - cfg.mirror_margin or responder > cfg.arousal_high
    )


def _turns(
    dense: DenseSeries,
    axes: Axes,
    cfg: MetricConfig,
    turns: Sequence[TurnSpan],
    flags: list[Flag],
) -> tuple[list[TurnScore], list[tuple[float, float]]]:
    """Per-turn emotion and co-regulation pairs (human arousal, next assistant arousal).

    Turn means use the UNsmoothed z-scores: a moving average crosses turn boundaries and would
    leak each turn into its neighbours (correlating independent turns).
    """
    out: list[TurnScore] = []
    dist = dense.turn_distress
    for j, t in enumerate(turns):
        if t.end <= t.start:
            continue
        mean = dense.turn_means[j]
        out.append(
            TurnScore(
                speaker=t.speaker,
                start=t.start,
                end=t.end,
                valence=float(valence_of(mean, axes.valence)),
                arousal=float(arousal_of(mean, axes.arousal)),
                distress=float(dist[j]) if dist is not None else 0.0,
                dominant=axes.names[int(np.argmax(mean))],
            )
        )
    pairs: list[tuple[float, float]] = []
    for prev, nxt in zip(out, out[1:], strict=False):
        # The assistant responding to the human: the direction the anchor study measured and the
        # one a curator of assistant data acts on.
        if not (prev.speaker == "human" and nxt.speaker == "assistant"):
            continue
        pairs.append((prev.arousal, nxt.arousal))
        if mirrors(prev.arousal, nxt.arousal, cfg):
            flags.append(
                Flag(
                    kind="mirroring",
                    start=nxt.start,
                    end=nxt.end,
                    severity=nxt.arousal,
                    evidence=f"{nxt.speaker} meets arousal {prev.arousal:.2f} with {nxt.arousal:.2f}",
                )
            )
        if (
            dist is not None
            and nxt.distress > cfg.threshold
            and nxt.distress - prev.distress > max(cfg.mirror_margin, cfg.threshold)
        ):
            flags.append(
                Flag(
                    kind="escalating_response",
                    start=nxt.start,
                    end=nxt.end,
                    severity=nxt.distress,
                    evidence=f"{nxt.speaker} raises distress {prev.distress:.2f} -> {nxt.distress:.2f}",
                )
            )
    return out, pairs
