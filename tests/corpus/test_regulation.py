"""Regulation metrics on hand-built trajectories (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from emocurate.configs import MetricConfig
from emocurate.corpus.regulation import Axes, TurnSpan, analyse, find_runs, pearson, smooth

NAMES = ["happy", "sad", "afraid", "angry", "calm", "desperate", "relieved", "surprised"]
AXES = Axes.for_names(NAMES, va={})
CFG = MetricConfig(
    smooth=5, threshold=1.0, recover_level=0.5, recovery_min=20, recovery_factor=0.5, tail=10
)


def traj(distress: np.ndarray, calm: np.ndarray | None = None) -> np.ndarray:
    """A [T, E] matrix whose distress members follow ``distress`` and calm members ``calm``."""
    z = np.zeros((len(distress), len(NAMES)))
    for n in ("afraid", "angry", "desperate"):
        z[:, NAMES.index(n)] = distress
    if calm is not None:
        for n in ("calm", "relieved"):
            z[:, NAMES.index(n)] = calm
    return z


def test_axes_use_distress_and_calm_members() -> None:
    assert [NAMES[i] for i in AXES.distress] == ["afraid", "angry", "desperate"]
    assert [NAMES[i] for i in AXES.calm] == ["calm", "relieved"]
    assert AXES.has_va
    # Valence weights: positive for happy, negative for afraid; normalised to unit L1.
    assert AXES.valence[NAMES.index("happy")] > 0 > AXES.valence[NAMES.index("afraid")]
    assert np.isclose(np.abs(AXES.valence).sum(), 1.0)


def test_axes_fallback_rule_without_core_distress_names() -> None:
    axes = Axes.for_names(["happy", "worried", "frustrated", "content"], va={})
    # worried (-0.5, 0.4) and frustrated (-0.6, 0.5) match valence < 0 and arousal > 0.3
    assert axes.distress == [1, 2]
    assert axes.calm == [3]


def test_smooth_is_centred_mean_with_edges() -> None:
    x = np.arange(6, dtype=float)
    s = smooth(x, 3)
    assert np.allclose(s, [0.5, 1, 2, 3, 4, 4.5])
    assert np.allclose(smooth(x, 1), x)
    m = smooth(np.stack([x, -x], 1), 3)
    assert m.shape == (6, 2) and np.allclose(m[:, 1], -s)


def test_find_runs_merges_gaps_and_drops_short() -> None:
    mask = np.array([0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0], dtype=bool)
    assert find_runs(mask, merge_gap=1, min_len=1) == [(1, 6), (9, 10)]
    assert find_runs(mask, merge_gap=0, min_len=2) == [(1, 3), (4, 6)]


def test_flat_neutral_has_no_episodes_or_flags() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.05, size=(200, len(NAMES)))
    an = analyse(z, AXES, CFG)
    assert an.metrics["n_episodes"] == 0
    assert an.metrics["recovery_rate"] is None
    assert an.metrics["unresolved_end"] == 0
    assert abs(an.metrics["escalation"]) < 0.1  # type: ignore[arg-type]
    assert an.flags == []


def test_recovering_episode() -> None:
    d = np.zeros(200)
    d[50:80] = 3.0  # distress...
    calm = np.zeros(200)
    calm[85:150] = 2.0  # ...then calm rises
    an = analyse(traj(d, calm), AXES, CFG)
    assert an.metrics["n_episodes"] == 1
    ep = an.episodes[0]
    assert ep.status == "recovered"
    assert 48 <= ep.start <= 50 and 80 <= ep.end <= 83
    assert ep.time_to_recover is not None and ep.time_to_recover <= 5
    assert ep.calm_rise is not None and ep.calm_rise > 0.5
    assert an.metrics["recovery_rate"] == 1.0
    assert an.metrics["unresolved_end"] == 0
    kinds = [f.kind for f in an.flags]
    assert kinds == ["distress_episode"]
    assert "recovered after" in an.flags[0].evidence


def test_unrecovered_episode_is_flagged() -> None:
    d = np.zeros(200)
    d[50:80] = 1.4  # recovery (half-way from the peak to rho 0.5) is at 0.95
    d[80:] = 0.98  # falls below the threshold (1.0) but never back to the recovery level
    an = analyse(traj(d), AXES, CFG)
    assert an.episodes[0].status == "unrecovered"
    assert an.metrics["recovery_rate"] == 0.0
    assert "unrecovered_distress" in {f.kind for f in an.flags}
    flag = next(f for f in an.flags if f.kind == "unrecovered_distress")
    # a 1.4 run crosses 1.0 on the 5-token smoothed series within 2 tokens of its onset
    assert flag.start == an.episodes[0].start and 50 <= flag.start <= 52
    assert flag.end >= 80 + CFG.recovery_window(30) - 5


def test_unresolved_distress_at_end() -> None:
    d = np.zeros(200)
    d[170:] = 2.5
    an = analyse(traj(d), AXES, CFG)
    assert an.episodes[-1].status == "unresolved"
    assert an.metrics["unresolved_end"] == 1
    assert an.metrics["distress_end"] > 2  # type: ignore[operator]
    f = next(f for f in an.flags if f.kind == "unresolved_end")
    assert f.end == 200 and 165 <= f.start <= 172


def test_escalation_trend() -> None:
    d = np.linspace(-0.5, 3.0, 300)
    an = analyse(traj(d), AXES, CFG)
    assert an.metrics["escalation"] > 3.0  # type: ignore[operator]
    assert "escalation" in {f.kind for f in an.flags}
    # The same values reversed de-escalate: negative slope, no escalation flag.
    an2 = analyse(traj(d[::-1].copy()), AXES, CFG)
    assert an2.metrics["escalation"] < -3.0  # type: ignore[operator]
    assert "escalation" not in {f.kind for f in an2.flags}


def test_volatility_higher_for_swings() -> None:
    t = np.arange(400)
    calm_doc = np.zeros((400, len(NAMES)))
    swing = np.zeros((400, len(NAMES)))
    up = np.sin(t / 4) > 0  # happy, then sad, reversing every ~13 tokens
    swing[:, NAMES.index("happy")] = 6.0 * up
    swing[:, NAMES.index("sad")] = 6.0 * ~up
    # Valence of one emotion present at z 6 is 6 x its weight (about 0.86 here); flag at half.
    cfg = CFG.model_copy(update={"volatility_high": 0.5 * 6 * AXES.valence.max()})
    a = analyse(calm_doc, AXES, cfg)
    b = analyse(swing, AXES, cfg)
    assert a.metrics["volatility"] == 0
    assert b.metrics["volatility"] > cfg.volatility_high  # type: ignore[operator]
    assert "high_volatility" in {f.kind for f in b.flags}
    assert "high_volatility" not in {f.kind for f in a.flags}


def test_profile_mean_p95_and_dominant() -> None:
    z = np.zeros((100, len(NAMES)))
    z[:, NAMES.index("surprised")] = 2.0
    z[:, NAMES.index("happy")] = 1.0
    z[90:, NAMES.index("sad")] = 5.0
    an = analyse(z, AXES, MetricConfig(smooth=1, dominant_k=2))
    assert an.dominant == ["surprised", "happy"]
    assert np.isclose(an.mean[NAMES.index("sad")], 0.5)
    assert an.p95[NAMES.index("sad")] == pytest.approx(5.0)


def test_regulation_axis_flags_unhealthy_spans() -> None:
    z = np.zeros((100, len(NAMES)))
    reg = np.zeros((100, 2))
    reg[40:60] = -3.0
    an = analyse(z, AXES, CFG, regulation=reg)
    assert an.metrics["regulation_min"] < -2  # type: ignore[operator]
    f = [f for f in an.flags if f.kind == "unhealthy_regulation"]
    assert len(f) == 1 and 36 <= f[0].start <= 42 and 58 <= f[0].end <= 64
    assert analyse(z, AXES, CFG).metrics["regulation_mean"] is None


def _dialogue(
    human_arousal: list[float], assistant_arousal: list[float], turn_len: int = 20
) -> tuple[np.ndarray, list[TurnSpan]]:
    """Alternating turns whose arousal is carried by 'surprised' (arousal weight > 0, valence ~0)."""
    z = np.zeros((turn_len * 2 * len(human_arousal), len(NAMES)))
    turns = []
    pos = 0
    scale = 1.0 / AXES.arousal[NAMES.index("surprised")]
    for h, a in zip(human_arousal, assistant_arousal, strict=True):
        for speaker, val in (("human", h), ("assistant", a)):
            z[pos : pos + turn_len, NAMES.index("surprised")] = val * scale
            turns.append(TurnSpan(speaker, pos, pos + turn_len))
            pos += turn_len
    return z, turns


def test_coregulation_calming_responder() -> None:
    # High-arousal human turns are met with low arousal: negative r, no mirroring.
    z, turns = _dialogue([2.0, 0.2, 1.5, 0.1], [0.1, 0.6, 0.2, 0.7])
    an = analyse(z, AXES, MetricConfig(smooth=1, coreg_min_pairs=3), turns=turns)
    assert an.metrics["n_turns"] == 8
    assert an.metrics["coreg_r"] < -0.5  # type: ignore[operator]
    assert an.metrics["n_mirroring"] == 0
    assert an.turns[0].speaker == "human" and an.turns[0].arousal == pytest.approx(2.0)


def test_coregulation_mirroring_responder_is_flagged() -> None:
    z, turns = _dialogue([2.0, 0.2, 1.5, 0.1], [2.2, 0.1, 1.8, 0.2])
    an = analyse(z, AXES, MetricConfig(smooth=1, coreg_min_pairs=3), turns=turns)
    assert an.metrics["coreg_r"] > 0.5  # type: ignore[operator]
    mirrors = [f for f in an.flags if f.kind == "mirroring"]
    assert len(mirrors) == 2
    assert mirrors[0].start == 20 and mirrors[0].end == 40  # the assistant's first turn


def test_empty_document() -> None:
    an = analyse(np.zeros((0, len(NAMES))), AXES, CFG)
    assert an.metrics["n_episodes"] == 0 and an.flags == []


def test_pearson_guards() -> None:
    assert pearson([1, 2], [3, 4]) is None
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_fast_smooth_and_quantile_match_reference() -> None:
    from emocurate.corpus.regulation import quantile_rows

    def ref(x: np.ndarray, k: int) -> np.ndarray:
        t, lo, hi = len(x), (k - 1) // 2, k // 2
        return np.stack([x[max(0, i - lo) : min(t, i + hi + 1)].mean(0) for i in range(t)])

    for t in (1, 2, 5, 8, 9, 10, 40):
        x = np.random.default_rng(t).normal(size=(t, 3))
        for k in (1, 2, 3, 8, 9):
            assert np.allclose(smooth(x, k), ref(x, k)), (t, k)
        assert np.allclose(quantile_rows(x, 0.95), np.percentile(x, 95, axis=0))


def test_find_runs_empty_and_full() -> None:
    assert find_runs(np.zeros(5, dtype=bool)) == []
    assert find_runs(np.ones(5, dtype=bool)) == [(0, 5)]


# -- valence of contrast vectors (issue 18: high_volatility F1 0 on the planted model) ---------

VA_NAMES = ["afraid", "calm", "desperate", "happy", "sad"]
VA_AXES = Axes.for_names(VA_NAMES)  # the study's taxonomy weights
# What mean-difference ("contrast") vectors measured on the planted model look like: the
# operative emotion high, the absent ones pushed below their neutral level.
HAPPY_ROW = np.array([-1.6, 0.3, -1.3, 3.0, -0.2])
SAD_ROW = np.array([-1.8, 0.0, -2.2, 0.1, 3.4])


def _chunks(rows: list[np.ndarray], width: int, pad: int = 30) -> np.ndarray:
    """Neutral padding, then ``width`` tokens of each row in turn, then padding."""
    body = [np.tile(r, (width, 1)) for r in rows]
    zero = np.zeros((pad, len(VA_NAMES)))
    return np.concatenate([zero, *body, zero])


def test_sad_text_has_negative_valence_with_contrast_vectors() -> None:
    """On a sad span the absent negative emotions (afraid, desperate) fall below neutral; read
    linearly they cancel the sad one and valence comes out positive. Valence is that of the
    emotions present."""
    an = analyse(_chunks([SAD_ROW], 40), VA_AXES, MetricConfig(smooth=5))
    assert an.valence is not None
    assert an.valence[40:60].mean() < -0.3
    an = analyse(_chunks([HAPPY_ROW], 40), VA_AXES, MetricConfig(smooth=5))
    assert an.valence is not None and an.valence[40:60].mean() > 0.3


def test_alternating_happy_and_sad_is_volatile_with_contrast_vectors() -> None:
    cfg = MetricConfig(smooth=5, volatility_high=0.3)
    swing = analyse(_chunks([HAPPY_ROW, SAD_ROW] * 4, 14), VA_AXES, cfg)
    vol = [f for f in swing.flags if f.kind == "high_volatility"]
    assert vol and vol[0].start >= 20 and vol[-1].end <= 30 + 8 * 14 + 10, vol
    one = analyse(_chunks([SAD_ROW], 8 * 14), VA_AXES, cfg)
    assert "high_volatility" not in {f.kind for f in one.flags}


def _va_dialogue(human: list[np.ndarray], assistant: list[np.ndarray], width: int = 12):
    """Turns human/assistant alternating; each gets ``width`` tokens of its row, 2 label tokens."""
    rows, turns, pos = [], [], 0
    for h, a in zip(human, assistant, strict=True):
        for speaker, r in (("human", h), ("assistant", a)):
            rows.append(np.zeros((2, len(VA_NAMES))))
            rows.append(np.tile(r, (width, 1)))
            turns.append(TurnSpan(speaker, pos + 2, pos + 2 + width))
            pos += 2 + width
    return np.concatenate(rows), turns


def test_volatility_is_one_speakers_swings_not_turn_taking() -> None:
    """A distressed human answered by a calm assistant is not a volatile dialogue (29 of 30
    such dialogues were flagged); one speaker swinging is."""
    cfg = MetricConfig(smooth=5, volatility_high=0.3)
    calm_row = np.array([-1.0, 3.0, -1.2, 0.2, -0.5])
    afraid_row = np.array([3.2, -0.5, 0.4, -1.0, -0.6])
    neutral = np.zeros(len(VA_NAMES))
    z, turns = _va_dialogue([afraid_row] * 4, [calm_row] * 4)
    an = analyse(z, VA_AXES, cfg, turns=turns)
    assert "high_volatility" not in {f.kind for f in an.flags}
    z, turns = _va_dialogue([HAPPY_ROW, SAD_ROW] * 3, [neutral] * 6)
    an = analyse(z, VA_AXES, cfg, turns=turns)
    vol = [f for f in an.flags if f.kind == "high_volatility"]
    assert vol, an.flags
    human = {i for t in turns if t.speaker == "human" for i in range(t.start, t.end)}
    assert vol[0].start in human and vol[-1].end - 1 in human


# Rows measured on the planted model (seed 1): an afraid span pushes desperate below neutral and
# a desperate span pushes afraid below it (mean-difference vectors).
AFRAID_ROW = np.array([5.3, -1.8, -2.2, -1.6, 0.5])
DESPERATE_ROW = np.array([-1.0, -1.2, 3.0, -1.0, -0.2])
CALM_ROW = np.array([-0.5, 4.0, -1.3, -1.8, 0.3])


def test_arousal_counts_the_emotions_present_with_contrast_vectors() -> None:
    """Issue 18 (planted seed 2, mirroring span IoU 0.46): read linearly, an afraid turn's
    arousal was cut by the desperate direction falling below neutral (0.52 against 0.72 for a
    desperate turn), so distressed human turns answered in kind fell under the mirroring level
    and only some of a dialogue's mirrored answers were flagged. Arousal, like valence, is that
    of the emotions present: both distressed turns are high, a calm one is low."""
    cfg = MetricConfig(smooth=5, arousal_high=0.6)
    z, turns = _va_dialogue([AFRAID_ROW, DESPERATE_ROW] * 2, [DESPERATE_ROW, AFRAID_ROW] * 2)
    an = analyse(z, VA_AXES, cfg, turns=turns)
    mirrored = [f for f in an.flags if f.kind == "mirroring"]
    assistant = [t for t in turns if t.speaker == "assistant"]
    assert [(f.start, f.end) for f in mirrored] == [(t.start, t.end) for t in assistant]
    assert all(t.arousal > 0.6 for t in an.turns)
    z, turns = _va_dialogue([AFRAID_ROW] * 3, [CALM_ROW] * 3)
    an = analyse(z, VA_AXES, cfg, turns=turns)
    assert "mirroring" not in {f.kind for f in an.flags}
    assert all(t.arousal < 0 for t in an.turns if t.speaker == "assistant")


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 18): lingering arousal in dialogues. A 'speaker level' discount (the "
    "human turn's fall from the dialogue's peak, half-recovery) fixed this but also discounted "
    "real, lower distressed turns after a higher one (planted seed 3 mirroring IoU 0.96 -> 0.71) "
    "and was removed; see docs/benchmarks.md",
)
def test_lingering_arousal_after_a_distressed_answer_is_not_mirroring() -> None:
    """Issue 18 (planted seed 4: all 30 calm-question dialogues answered in distress flagged
    ``mirroring``): the model's arousal lingers into the calm human turn after a distressed
    answer (0.26-0.46 against 1.06-1.26 for the answer and a pair level of about 0.2), so the
    calm question "was met with" the next answer's arousal. Wanted: a lingering question is no
    high-arousal turn, a human who stays distressed still is."""
    cfg = MetricConfig(smooth=5, arousal_high=0.2)
    low = np.full(len(VA_NAMES), 0.0)
    lingering = AFRAID_ROW * 0.3  # arousal ~0.3: what is left of an afraid answer
    z, turns = _va_dialogue([low, lingering, lingering], [AFRAID_ROW, lingering, DESPERATE_ROW])
    an = analyse(z, VA_AXES, cfg, turns=turns)
    assert "mirroring" not in {f.kind for f in an.flags}, an.flags
    assert an.metrics["mirroring_level"] is not None and an.metrics["mirroring_level"] < 0.2
    # a human who stays distressed after a distressed answer is answered in kind: mirroring
    z, turns = _va_dialogue([AFRAID_ROW, AFRAID_ROW * 0.9], [AFRAID_ROW, AFRAID_ROW])
    an = analyse(z, VA_AXES, cfg, turns=turns)
    mirrored = [f for f in an.flags if f.kind == "mirroring"]
    assert len(mirrored) == 2
