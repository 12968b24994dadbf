"""The audit's metric defects, each as a hand-built trajectory (issue 10, item 6)."""

from __future__ import annotations

import numpy as np

from emocurate.corpus.regulation import Axes, MetricConfig, TurnSpan, analyse

NAMES = ["happy", "sad", "afraid", "angry", "calm", "desperate", "relieved", "surprised"]
AXES = Axes.for_names(NAMES, va={})


def traj(distress: np.ndarray) -> np.ndarray:
    z = np.zeros((len(distress), len(NAMES)))
    for n in ("afraid", "angry", "desperate"):
        z[:, NAMES.index(n)] = distress
    return z


def test_single_spike_is_not_an_episode() -> None:
    # One token at z = 20 smooths to 20/9 over 9 tokens; the raw series has one token above.
    d = np.zeros(100)
    d[50] = 20.0
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 0
    assert an.flags == []


def test_sustained_raw_run_is_still_an_episode() -> None:
    d = np.zeros(100)
    d[50:56] = 3.0
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 1


def test_sawtooth_that_always_recovers_is_not_unresolved() -> None:
    # Ten bursts, each followed by a return to zero; the document ends calm.
    d = np.concatenate([np.r_[np.full(12, 3.0), np.zeros(12)] for _ in range(10)])
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 10
    assert all(e.status == "recovered" for e in an.episodes)
    assert an.metrics["unresolved_end"] == 0
    assert "unresolved_end" not in {f.kind for f in an.flags}


def test_unresolved_end_agrees_with_last_episode() -> None:
    d = np.zeros(300)
    d[100:130] = 3.0  # recovers
    d[200:] = 0.8  # ends above the recovery level but below the threshold: no episode there
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.episodes[-1].status == "recovered"
    assert an.metrics["unresolved_end"] == 0


def test_steady_decline_recovers_when_window_scales_with_episode() -> None:
    # Above the threshold for ~500 tokens, back to the recovery level ~125 tokens later.
    d = np.linspace(3.0, -1.0, 1000)
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 1
    assert an.episodes[0].status == "recovered"
    assert "unrecovered_distress" not in {f.kind for f in an.flags}


def _dialogue(h: list[float], a: list[float], turn_len: int) -> tuple[np.ndarray, list[TurnSpan]]:
    z = np.zeros((turn_len * 2 * len(h), len(NAMES)))
    turns, pos = [], 0
    scale = 1.0 / AXES.arousal[NAMES.index("surprised")]
    for hv, av in zip(h, a, strict=True):
        for speaker, val in (("human", hv), ("assistant", av)):
            z[pos : pos + turn_len, NAMES.index("surprised")] = val * scale
            turns.append(TurnSpan(speaker, pos, pos + turn_len))
            pos += turn_len
    return z, turns


def test_coregulation_uses_unsmoothed_turn_means() -> None:
    # Human and assistant arousal are orthogonal patterns (r = 0 exactly); smoothing across
    # 6-token turn boundaries would leak each turn into its neighbours and correlate them.
    h = [1.0, -1.0, 1.0, -1.0] * 3
    a = [1.0, 1.0, -1.0, -1.0] * 3
    z, turns = _dialogue(h, a, turn_len=6)
    an = analyse(z, AXES, MetricConfig(), turns=turns)
    assert an.metrics["coreg_n"] == 12
    assert abs(an.metrics["coreg_r"]) < 1e-6  # type: ignore[arg-type]
    assert an.turns[0].arousal == np.float64(1.0) or abs(an.turns[0].arousal - 1.0) < 1e-9


def test_coregulation_needs_minimum_pairs() -> None:
    z, turns = _dialogue([2.0, 0.2, 1.5, 0.1], [0.1, 0.6, 0.2, 0.7], turn_len=20)
    an = analyse(z, AXES, MetricConfig(smooth=1), turns=turns)
    assert an.metrics["coreg_n"] == 4
    assert an.metrics["coreg_r"] is None  # 4 < coreg_min_pairs (5)
    an5 = analyse(z, AXES, MetricConfig(smooth=1, coreg_min_pairs=4), turns=turns)
    assert an5.metrics["coreg_r"] is not None and an5.metrics["coreg_r"] < -0.5


def test_mirroring_holds_at_any_scale() -> None:
    # Both turns far above the high-arousal level: the responder mirrors even though its arousal
    # is a little (more than the 0.25 margin) below the speaker's.
    z, turns = _dialogue([10.0, 0.0, 0.0, 0.0, 0.0], [9.5, 0.0, 0.0, 0.0, 0.0], turn_len=20)
    an = analyse(z, AXES, MetricConfig(smooth=1), turns=turns)
    assert [f.kind for f in an.flags if f.kind == "mirroring"] == ["mirroring"]
    # a calm responder is not mirroring
    z, turns = _dialogue([10.0, 0.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0, 0.0], turn_len=20)
    an = analyse(z, AXES, MetricConfig(smooth=1), turns=turns)
    assert not [f for f in an.flags if f.kind == "mirroring"]


def test_escalating_response_needs_a_rise_of_a_threshold() -> None:
    # Human distress 10, assistant 10.4: the same level, not an escalation by the responder.
    z = np.zeros((40, len(NAMES)))
    for n in ("afraid", "angry", "desperate"):
        z[:20, NAMES.index(n)] = 10.0
        z[20:, NAMES.index(n)] = 10.4
    turns = [TurnSpan("human", 0, 20), TurnSpan("assistant", 20, 40)]
    an = analyse(z, AXES, MetricConfig(smooth=1), turns=turns)
    assert "escalating_response" not in {f.kind for f in an.flags}
    z[20:, [NAMES.index(n) for n in ("afraid", "angry", "desperate")]] = 12.0
    an = analyse(z, AXES, MetricConfig(smooth=1), turns=turns)
    assert "escalating_response" in {f.kind for f in an.flags}
