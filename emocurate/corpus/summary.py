"""The corpus-level summary of a scoring run, accumulated one shard at a time.

A scoring run may write millions of rows; reading them all back into one data frame to count
flags would make the end of the run the one step whose memory grows with the corpus (and it
imported polars, ~0.4 s, into a command that otherwise never needs it). Instead each shard's
Parquet file is read for the few columns the summary uses, folded into mergeable totals (sums,
counts, co-moments), and dropped. Merging is exact for counts and numerically stable for the
pooled human→assistant arousal correlation (Chan et al.'s pairwise update of the co-moments).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from emocurate.artifacts import Coregulation, ReferenceShift, ScoreSummary

# The metrics whose corpus means the manifest reports.
SUMMARY_METRICS: tuple[str, ...] = (
    "valence_mean",
    "arousal_mean",
    "distress_mean",
    "distress_max",
    "n_episodes",
    "recovery_rate",
    "unresolved_end",
    "escalation",
    "volatility",
    "regulation_mean",
)
PCT_COLUMNS = ("distress_pct", "mirroring_pct")  # calibrated percentiles (reference shift)
_COLUMNS = ("n_flags", "flag_kinds", "dominant", "is_dialogue", *PCT_COLUMNS, *SUMMARY_METRICS)


@dataclass
class CoMoments:
    """Count, means and (co-)moments of ``(x, y)`` pairs; mergeable without keeping the pairs."""

    n: int = 0
    mx: float = 0.0
    my: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0

    def add(self, x: float, y: float) -> None:
        self.merge(CoMoments(1, x, y))

    def merge(self, o: CoMoments) -> None:
        if o.n == 0:
            return
        n = self.n + o.n
        dx, dy = o.mx - self.mx, o.my - self.my
        w = self.n * o.n / n
        self.sxx += o.sxx + dx * dx * w
        self.syy += o.syy + dy * dy * w
        self.sxy += o.sxy + dx * dy * w
        self.mx += dx * o.n / n
        self.my += dy * o.n / n
        self.n = n

    def pearson(self, min_pairs: int = 3) -> float | None:
        """As :func:`emocurate.corpus.regulation.pearson`: None below ``min_pairs`` or without variance."""
        if self.n < max(3, min_pairs):
            return None
        sd_x, sd_y = math.sqrt(self.sxx / self.n), math.sqrt(self.syy / self.n)
        if sd_x < 1e-9 or sd_y < 1e-9:
            return None
        return max(-1.0, min(1.0, self.sxy / math.sqrt(self.sxx * self.syy)))


@dataclass
class SummaryTotals:
    """What :class:`ScoreSummary` is computed from; one per shard, merged across shards."""

    flagged: int = 0
    flags: Counter[str] = field(default_factory=Counter)
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    dialogues: int = 0
    coreg: CoMoments = field(default_factory=CoMoments)
    dominant: Counter[str] = field(default_factory=Counter)
    # calibrated percentiles in 1-point steps: medians that merge across shards in bounded memory
    pct_hist: dict[str, Counter[int]] = field(default_factory=dict)

    def merge(self, o: SummaryTotals) -> None:
        self.flagged += o.flagged
        self.flags.update(o.flags)
        for k, v in o.sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + o.counts[k]
        self.dialogues += o.dialogues
        self.coreg.merge(o.coreg)
        self.dominant.update(o.dominant)
        for col, hist in o.pct_hist.items():
            self.pct_hist.setdefault(col, Counter()).update(hist)

    def pct_medians(self) -> dict[str, float]:
        out = {}
        for col, hist in self.pct_hist.items():
            n, seen = sum(hist.values()), 0
            for k in sorted(hist):
                seen += hist[k]
                if 2 * seen >= n:
                    out[col] = float(k)
                    break
        return out

    def summary(self) -> ScoreSummary:
        def top(c: Counter[str], k: int | None = None) -> dict[str, int]:
            # by count, ties by name: the same order whatever the shard order
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:k])

        return ScoreSummary(
            docs_flagged=self.flagged,
            flags=top(self.flags),
            metric_means={
                k: (round(self.sums[k] / self.counts[k], 4) if self.counts.get(k) else None)
                for k in SUMMARY_METRICS
            },
            dialogues=self.dialogues,
            coregulation=Coregulation(
                pairs=self.coreg.n,
                r=self.coreg.pearson(),
                mean_speaker_arousal=self.coreg.mx if self.coreg.n else None,
            ),
            top_dominant=top(self.dominant, 10),
            pct_medians=self.pct_medians(),
            pct_docs={col: sum(h.values()) for col, h in self.pct_hist.items() if h},
        )


def shard_totals(path: Path) -> SummaryTotals:
    """Totals of one ``data/shard-*.parquet`` file (the columns the summary needs)."""
    t = SummaryTotals()
    table = pq.read_table(path, columns=list(_COLUMNS))
    cols = {name: table.column(name).to_pylist() for name in _COLUMNS}
    t.flagged = sum(1 for n in cols["n_flags"] if n)
    t.flags = Counter(k for kinds in cols["flag_kinds"] for k in kinds or ())
    for k in SUMMARY_METRICS:
        vals = [v for v in cols[k] if v is not None]
        t.sums[k], t.counts[k] = float(sum(vals)), len(vals)
    t.dominant = Counter(d[0] for d in cols["dominant"] if d)
    t.pct_hist = {col: Counter(round(v) for v in cols[col] if v is not None) for col in PCT_COLUMNS}
    dialogue_rows = [i for i, d in enumerate(cols["is_dialogue"]) if d]
    t.dialogues = len(dialogue_rows)
    if dialogue_rows:
        # the nested turns column only for shards that hold dialogues
        turns = pq.read_table(path, columns=["turns"]).column("turns")
        for i in dialogue_rows:
            row = turns[i].as_py() or []
            for a, b in zip(row, row[1:], strict=False):
                if a["speaker"] == "human" and b["speaker"] == "assistant":
                    t.coreg.add(a["arousal"], b["arousal"])
    return t


def summarize_shards(paths: Iterable[Path]) -> ScoreSummary:
    """The run's summary, one shard in memory at a time."""
    total = SummaryTotals()
    for p in paths:
        total.merge(shard_totals(p))
    return total.summary()


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
