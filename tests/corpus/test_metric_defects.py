"""The audit's metric defects, each as a hand-built trajectory (issue 10, item 6)."""

from __future__ import annotations

import numpy as np

from emocurate.configs import MetricConfig
from emocurate.corpus.regulation import Axes, TurnSpan, analyse

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


# -- issue 18: episodes are runs, escalation means rising ----------------------------------------


def _fragmented_run(rng: np.random.Generator) -> np.ndarray:
    """50 calm tokens, one 100-token distress run that dips below the threshold for 16 tokens
    (never back to the recovery level) three times, then 140 calm tokens: one run that
    recovers."""
    d = np.zeros(290)
    run = np.full(100, 2.5)
    for k in (14, 44, 74):
        run[k : k + 16] = 0.75  # below theta = 1, above rho = 0.5
    d[50:150] = run
    return d + rng.normal(0, 0.05, len(d))


def test_fragments_of_one_run_are_one_episode_that_recovers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        an = analyse(traj(_fragmented_run(rng)), AXES, MetricConfig())
        assert an.metrics["n_episodes"] == 1, [(e.start, e.end) for e in an.episodes]
        (ep,) = an.episodes
        assert 46 <= ep.start <= 54 and 146 <= ep.end <= 154
        assert ep.status == "recovered"
        kinds = {f.kind for f in an.flags}
        assert "unrecovered_distress" not in kinds and "unresolved_end" not in kinds


def test_fragments_separated_by_a_recovery_stay_separate() -> None:
    d = np.zeros(200)
    d[40:60] = 2.5
    d[60:80] = 0.0  # back to calm for 20 tokens
    d[80:100] = 2.5
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 2


def test_unresolved_end_spans_the_whole_final_run() -> None:
    d = np.zeros(200)
    run = np.full(80, 2.5)
    run[20:36] = run[50:66] = 0.75  # fragments, no recovery between them
    d[120:] = run
    an = analyse(traj(d), AXES, MetricConfig())
    f = next(f for f in an.flags if f.kind == "unresolved_end")
    assert 116 <= f.start <= 124 and f.end == 200


def test_a_single_run_at_the_end_is_unresolved_not_escalation() -> None:
    """Neutral text, then one distress run to the end: the slope is positive but nothing rises
    across the document; it is ``unresolved_end``."""
    d = np.zeros(300)
    d[220:] = 3.0
    an = analyse(traj(d), AXES, MetricConfig())
    kinds = {f.kind for f in an.flags}
    assert "unresolved_end" in kinds
    assert "escalation" not in kinds


def test_rising_episodes_are_escalation_equal_ones_are_not() -> None:
    def doc(peaks: list[float]) -> np.ndarray:
        d = np.zeros(60)
        for p in peaks:
            d = np.concatenate([d, np.full(20, p), np.zeros(30)])
        return d

    an = analyse(traj(doc([1.5, 2.5, 3.5])), AXES, MetricConfig())
    esc = [f for f in an.flags if f.kind == "escalation"]
    assert len(esc) == 1
    assert 56 <= esc[0].start <= 64 and 176 <= esc[0].end <= 184  # first to last rising episode
    for peaks in ([2.5, 2.5, 2.5], [3.5, 2.5, 1.5], [3.5, 1.5, 2.5]):
        an = analyse(traj(doc(peaks)), AXES, MetricConfig())
        assert "escalation" not in {f.kind for f in an.flags}, peaks


def test_a_small_bump_after_the_rising_peaks_does_not_hide_escalation() -> None:
    """Planted seed 2 (issue 18): after the third, highest distress span, lingering distress
    crossed the threshold once more as a short, low episode near the end; the chain of rising
    peaks had to end at the document's last episode, so 8 of 30 escalating documents were
    missed. Peaks rising to the document's highest episode are escalation, whatever lower
    episodes follow it; the span still ends at the highest one."""
    d = np.zeros(60)
    for p in (1.5, 2.5, 3.5):
        d = np.concatenate([d, np.full(20, p), np.zeros(30)])
    # above the last run's half-recovery level (2.0: no lingering tail), below its peak
    d = np.concatenate([d, np.full(12, 2.5), np.zeros(40)])
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 4
    esc = [f for f in an.flags if f.kind == "escalation"]
    assert len(esc) == 1
    assert 56 <= esc[0].start <= 64 and 176 <= esc[0].end <= 184
    # peaks that fall, or rise only to a lower level than an earlier episode, stay no escalation
    for peaks in ([3.5, 1.5, 2.5, 3.0], [4.0, 1.5, 2.5, 3.5]):
        d = np.zeros(60)
        for p in peaks:
            d = np.concatenate([d, np.full(20, p), np.zeros(30)])
        an = analyse(traj(d), AXES, MetricConfig())
        assert "escalation" not in {f.kind for f in an.flags}, peaks


# Calibrated thresholds of the planted model (seed 1) at about 250 tokens.
CALIBRATED = MetricConfig(threshold=0.55, recover_level=0.3, escalation_margin=0.12)


def test_equal_spans_read_a_little_higher_as_context_builds_are_not_escalation() -> None:
    """Planted seed 1 (issue 18): three spans of EQUAL planted intensity read 2.19 -> 2.42 ->
    2.56 (the model's distress builds with the context: each a few percent higher), and the
    calibrated margin (0.12 z) let 8 of 30 such decoys through as `escalation`. Rising spans
    read 1.50 -> 2.39 -> 3.13. A rise is a step of more than `escalation_rise` (15%) of the
    previous peak's height above the recovery level, as well as the margin."""

    def doc(peaks: list[float]) -> np.ndarray:
        d = np.zeros(40)
        for p in peaks:
            d = np.concatenate([d, np.full(25, p), np.zeros(40)])
        return d

    flat = analyse(traj(doc([2.19, 2.42, 2.56])), AXES, CALIBRATED)
    assert flat.metrics["n_episodes"] == 3
    assert "escalation" not in {f.kind for f in flat.flags}
    rising = analyse(traj(doc([1.5, 2.39, 3.13])), AXES, CALIBRATED)
    assert "escalation" in {f.kind for f in rising.flags}


def test_one_final_run_after_a_little_drift_is_not_a_steady_climb() -> None:
    """Planted seed 1 (issue 18): neutral text that drifts up a little (segment means -0.11 ->
    0.14), then one run to the end (0.90, 1.06): every step of the segment means rose by more
    than the calibrated margin, so 8 of 30 single-run documents were `escalation`. A steady
    climb rises by comparable steps: none under half the mean step. A ramp still is one."""
    d = np.concatenate([np.full(60, -0.11), np.full(60, 0.14), np.full(12, 0.14)])
    d = np.concatenate([d, np.full(48, 1.09), np.full(60, 1.06)])
    an = analyse(traj(d), AXES, CALIBRATED)
    kinds = {f.kind for f in an.flags}
    assert "unresolved_end" in kinds and "escalation" not in kinds
    ramp = analyse(traj(np.linspace(-0.1, 1.5, 240)), AXES, CALIBRATED)
    assert "escalation" in {f.kind for f in ramp.flags}


def test_a_low_bump_after_a_recovered_run_is_its_tail_not_a_new_episode() -> None:
    """Planted seed 1 (issue 18): 60 tokens after a run peaking at 3.1 the model's lingering
    distress crosses the calibrated threshold (0.55) once more in a short bump peaking at 0.6-0.8
    at the very end, and `unresolved_end` fired on 22 documents that end recovered. A run that
    never rises above the half-recovery level of the episode before it is that episode's tail:
    no new episode, the document ended recovered. A later run above that level is an episode."""
    base = np.concatenate([np.zeros(40), np.full(25, 3.1), np.full(60, 0.3)])
    an = analyse(traj(np.concatenate([base, np.full(10, 0.75)])), AXES, CALIBRATED)
    assert an.metrics["n_episodes"] == 1
    assert "unresolved_end" not in {f.kind for f in an.flags}
    an = analyse(traj(np.concatenate([base, np.full(20, 2.5)])), AXES, CALIBRATED)
    assert an.metrics["n_episodes"] == 2
    assert "unresolved_end" in {f.kind for f in an.flags}


def test_a_dip_at_the_last_token_is_not_a_recovery() -> None:
    """Seen on the planted model: a run to the end of the document whose last token dips to the
    recovery level was "recovered", so no ``unresolved_end``. Recovery needs ``min_episode``
    tokens back at the recovery level, as an episode needs ``min_episode`` tokens above."""
    d = np.zeros(200)
    d[120:] = 2.5
    d[-1] = -8.0  # the final smoothed value falls under rho; nothing follows
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["unresolved_end"] == 1
    assert "unresolved_end" in {f.kind for f in an.flags}


def test_distress_that_lingers_below_the_episode_level_has_recovered() -> None:
    # Issue 18 (planted seed 2): after a run the model's distress stays a little above the
    # reference's 90th percentile (rho) but well below the episode threshold until the end.
    # Measured from the run's peak the document has recovered: no unresolved_end and no
    # unrecovered_distress (both fired when recovery meant falling to rho itself).
    d = np.zeros(200)
    d[40:80] = 3.0
    d[80:] = 0.7  # between rho (0.5) and the threshold (1.0)
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_episodes"] == 1
    assert an.metrics["n_recovered"] == 1
    kinds = {f.kind for f in an.flags}
    assert "unresolved_end" not in kinds and "unrecovered_distress" not in kinds


def test_distress_that_stays_near_its_peak_is_not_recovered() -> None:
    # The counterpart: a fall from 3.0 to 2.5 (above the threshold) is the same episode going on.
    d = np.zeros(200)
    d[40:80] = 3.0
    d[80:] = 2.5
    an = analyse(traj(d), AXES, MetricConfig())
    assert an.metrics["n_recovered"] == 0
    assert "unresolved_end" in {f.kind for f in an.flags}


def test_lingering_bumps_above_the_threshold_after_a_run_are_its_tail() -> None:
    """Planted seed 2 (issue 18, position-true calibration: threshold 0.33, rho 0.08): after a
    run peaking at 1.4 the model's distress lingers at 0.1-0.5 for the remaining 200 tokens,
    crossing the threshold in short bumps. The gaps between the bumps never fell back to rho,
    so every bump merged into the run, which then reached the document's end: `unresolved_end`
    on 9 of 30 documents that recover, and the episode's span three times the planted run.
    The gaps fall half-way back from the peak (the episode's own recovery test): one episode,
    the run, recovered. A second real run after the dip is still its own episode."""
    cfg = MetricConfig(threshold=0.33, recover_level=0.08, escalation_margin=0.12)
    bumps = np.tile(np.concatenate([np.full(12, 0.15), np.full(8, 0.5)]), 10)
    base = np.concatenate([np.full(60, -0.1), np.full(50, 1.4)])
    an = analyse(traj(np.concatenate([base, bumps])), AXES, cfg)
    kinds = {f.kind for f in an.flags}
    assert an.metrics["n_episodes"] == 1 and an.metrics["n_recovered"] == 1, an.metrics
    assert "unresolved_end" not in kinds
    (ep,) = [f for f in an.flags if f.kind == "distress_episode"]
    assert ep.end - ep.start < 70, (ep.start, ep.end)  # the run (50 tokens + smoothing)
    again = analyse(traj(np.concatenate([base, bumps[:60], np.full(40, 1.3)])), AXES, cfg)
    assert again.metrics["n_episodes"] == 2
    assert "unresolved_end" in {f.kind for f in again.flags}


def test_lingering_distress_above_the_threshold_after_a_peak_is_its_tail() -> None:
    """Planted seed 2 (issue 18, position-true calibration: threshold 0.30, rho 0.08): after the
    last span of an escalating document (peak 2.1) the model's distress lingers at 0.35-0.8 over
    the closing neutral sentences, never under the threshold, so the run reaches the end of
    the document: `unresolved_end` on 5 of 30 escalating and 5 of 30 recovering documents.
    Once distress has stayed half-way back from its peak for a recovery window (32 tokens) the
    rest of the run is its tail. Distress that stays near its peak to the end is unresolved,
    and so is a final span that sags after an early peak for less than a recovery window (the
    first attempt cut those too: 7-10 of 30 unresolved documents per planted seed missed)."""
    cfg = MetricConfig(threshold=0.30, recover_level=0.08, escalation_margin=0.12)
    rng = np.random.default_rng(0)
    base = np.concatenate([np.full(60, -0.05), np.full(30, 2.1)])
    linger = 0.55 + 0.2 * np.sin(np.arange(120) / 5.0) + 0.03 * rng.standard_normal(120)
    an = analyse(traj(np.concatenate([base, linger])), AXES, cfg)
    kinds = {f.kind for f in an.flags}
    assert an.metrics["n_episodes"] == 1 and an.metrics["n_recovered"] == 1, an.metrics
    assert "unresolved_end" not in kinds
    near_peak = analyse(traj(np.concatenate([base, np.full(120, 1.6)])), AXES, cfg)
    assert "unresolved_end" in {f.kind for f in near_peak.flags}
    sag = np.concatenate([np.full(60, -0.05), np.full(8, 2.1), np.full(25, 0.9)])
    assert "unresolved_end" in {f.kind for f in analyse(traj(sag), AXES, cfg).flags}


def test_rising_spans_joined_by_lingering_distress_are_escalation() -> None:
    """Planted seed 2 (issue 18, position-true calibration: threshold 0.33, rho 0.08): between
    the second (peak 2.2) and third (3.1) span of an escalating document the model's distress
    lingers at 0.3-0.5 for 40 tokens, crossing the threshold now and then but never back to
    rho, so the two spans merged into one episode and 3 of 30 escalating documents had only two
    rising episodes. A run that stays half-way back from its peak for a recovery window (32
    tokens) has ended, whatever follows; a short dip inside a run (16 tokens) does not end it."""
    cfg = MetricConfig(threshold=0.33, recover_level=0.08, escalation_margin=0.12)
    rng = np.random.default_rng(1)

    def linger(n: int) -> np.ndarray:
        return 0.4 + 0.12 * np.sin(np.arange(n) / 4.0) + 0.02 * rng.standard_normal(n)

    d = np.concatenate(
        [np.full(40, -0.05), np.full(20, 1.2), np.full(40, 0.0), np.full(20, 2.2), linger(40)]
    )
    d = np.concatenate([d, np.full(20, 3.1), np.full(60, 0.0)])
    an = analyse(traj(d), AXES, cfg)
    assert an.metrics["n_episodes"] == 3, [(e.start, e.end) for e in an.episodes]
    assert "escalation" in {f.kind for f in an.flags}
    wobble = np.concatenate([np.full(40, -0.05), np.full(30, 2.2), linger(16), np.full(30, 2.2)])
    one = analyse(traj(np.concatenate([wobble, np.full(60, 0.05)])), AXES, cfg)
    assert one.metrics["n_episodes"] == 1, [(e.start, e.end) for e in one.episodes]


def test_a_dip_in_the_last_few_tokens_is_not_a_recovery() -> None:
    """The in-suite planted run (position-true calibration): a final distress span whose last
    four tokens (the sentence's end) read 0.4-0.8, under the run's half-recovery level (1.1),
    was "recovered", so 2 of 6 documents that end in distress lost `unresolved_end`. A recovery
    that reaches the end of the document must last at least a smoothing window (9 tokens):
    shorter, it is the series' edge, not a return."""
    cfg = MetricConfig(threshold=0.82, recover_level=0.34, escalation_margin=0.24)
    span = np.tile([1.06, 1.12, 1.03, 1.81, 1.18, 1.25, 1.12, 1.87, 1.26, 1.34, 1.17, 1.89], 6)
    end = [1.22, 1.05, 0.87, 1.03, 0.43, 0.44, 0.49, 0.79]  # the document's last 8 tokens
    d = np.concatenate([np.full(120, 0.0), span, end])
    an = analyse(traj(d), AXES, cfg)
    assert "unresolved_end" in {f.kind for f in an.flags}, [
        (e.start, e.end, e.status) for e in an.episodes
    ]
    calm_end = np.concatenate([np.full(120, 0.0), span, end, np.full(12, 0.2)])
    assert "unresolved_end" not in {f.kind for f in analyse(traj(calm_end), AXES, cfg).flags}
