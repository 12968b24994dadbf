"""Column names of the scores table that several modules rely on, in a leaf module.

The artifacts (row schemas), the row builder (:mod:`emocurate.corpus.rows`), the metrics
(:mod:`emocurate.corpus.regulation`) and the curation policy (:mod:`emocurate.corpus.policy`,
which checks a rule's metric name when it is read) all need them. Declared here, the policy
reads them without importing the artifacts, which import the policy to type the curate
manifest (no import cycle); :mod:`emocurate.artifacts` re-exports ``METRIC_KEYS``.
"""

from __future__ import annotations

METRIC_KEYS: tuple[str, ...] = (  # the regulation metrics, one float column each
    "valence_mean",
    "valence_min",
    "valence_end",
    "arousal_mean",
    "arousal_max",
    "distress_mean",
    "distress_max",
    "distress_end",
    "distress_level",
    "distress_pct",
    "calm_mean",
    "n_episodes",
    "distress_frac",
    "n_recovered",
    "recovery_rate",
    "time_to_recover",
    "calm_rise",
    "unresolved_end",
    "escalation",
    "volatility",
    "regulation_mean",
    "regulation_min",
    "n_turns",
    "coreg_r",
    "coreg_n",
    "n_mirroring",
    "mirroring_level",
    "mirroring_pct",
)

COUNT_COLUMNS: tuple[str, ...] = ("n_tokens", "n_chars", "n_windows", "is_dialogue", "n_flags")
"""The per-document counts and the dialogue flag: the numeric columns besides the metrics
(:func:`emocurate.corpus.rows.score_schema` order)."""
