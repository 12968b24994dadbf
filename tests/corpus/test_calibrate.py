"""Calibrated flags: thresholds are reference quantiles, so --threshold reads as a rate."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from emocurate.configs import MetricConfig, ScoreConfig
from emocurate.corpus.calibrate import (
    CALIBRATION_FILE,
    Calibration,
    calibration_from_scores,
    flag_rates,
    load_calibration,
)
from emocurate.corpus.engines import score_corpus
from emocurate.corpus.regulation import Axes, episode_runs, smooth, sustained_level
from emocurate.errors import InputError
from emocurate.vectors.models import LoadedModel

from .conftest import NEUTRAL, make_vectorset, write_jsonl

NAMES = ["happy", "sad", "afraid", "angry", "calm", "desperate", "relieved", "surprised"]
AXES = Axes.for_names(NAMES, va={})


def test_sustained_level_is_the_episode_statistic() -> None:
    # flagged at level t  <=>  statistic > t, on random noisy trajectories and many levels
    rng = np.random.default_rng(0)
    for trial in range(40):
        raw = rng.normal(0, 1, 120) + (2.0 if trial % 3 == 0 else 0.0) * (np.arange(120) > 80)
        sm = smooth(raw, 9)
        s = sustained_level(sm, raw, 3, 4)
        for t in np.linspace(-1, 3, 41):
            assert bool(episode_runs(sm, raw, t, 3, 4)) == (s > t), (trial, t, s)
    assert sustained_level(np.zeros(2), np.zeros(2), 3, 4) == float("-inf")


def _noise_docs(seed: int, n: int, length: int) -> list[tuple[np.ndarray, None, list]]:
    """Neutral-like documents: correlated noise on every emotion."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        z = rng.normal(0, 1, (length, len(NAMES)))
        z[:, :] += rng.normal(0, 1, (length, 1)) * 0.5  # shared component
        out.append((z, None, []))
    return out


def _calibration(docs: list) -> Calibration:
    """Calibrated on the z-scores of ``docs``."""
    return calibration_from_scores(docs, AXES, MetricConfig())


@functools.cache
def _cal64() -> Calibration:
    """Calibrated on 1,500 noise documents of 64 tokens (cached: calibration takes seconds)."""
    return _calibration(_noise_docs(0, 1500, 64))


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_held_out_flag_rate_matches_the_target(rate: float) -> None:
    cal = _cal64()
    fresh = _noise_docs(1, 2000, 64)
    got = flag_rates(cal, fresh, AXES, MetricConfig(), rate)
    assert abs(got.per_kind.get("distress_episode", 0) - rate) <= 0.5 * rate, got
    # high_volatility needs both sides of valence past their levels: at most the rate ...
    assert got.per_kind.get("high_volatility", 0) <= 1.5 * rate, got
    # ... and each side alone is calibrated to the rate (checked at 5%: the side statistics are
    # narrow, so at 1% the 1,500-document reference's sampling error alone moves the rate 1.6x).
    if rate >= 0.05:
        for side, share in _valence_side_rates(cal, fresh, rate).items():
            assert abs(share - rate) <= 0.5 * rate, (side, share)


def _valence_side_rates(cal: Calibration, docs: list, rate: float) -> dict[str, float]:
    """Share of ``docs`` whose smoothed valence passes +volatility_high, and -volatility_low."""
    from emocurate.corpus.regulation import analyse

    up = down = 0
    for z, _, _ in docs:
        mcfg = cal.metric_config(MetricConfig(), rate, len(z))
        v = analyse(z, AXES, mcfg).valence
        assert v is not None and mcfg.volatility_low is not None
        up += bool(v.max() > mcfg.volatility_high)
        down += bool(v.min() < -mcfg.volatility_low)
    return {"high": up / len(docs), "low": down / len(docs)}


def test_longer_documents_get_stricter_thresholds_and_keep_the_rate() -> None:
    cal = _cal64()
    assert cal.thresholds(0.01, 512)["threshold"] > cal.thresholds(0.01, 128)["threshold"]
    assert cal.thresholds(0.01, 64)["threshold"] < cal.thresholds(0.01, 128)["threshold"]
    long_docs = _noise_docs(2, 500, 512)
    got = flag_rates(cal, long_docs, AXES, MetricConfig(), 0.05)
    assert got.per_kind.get("distress_episode", 0) <= 0.05 * 1.5, got


def test_calibration_file_round_trip_and_rates(vs_dir: Path) -> None:
    cal = load_calibration(vs_dir)
    assert (vs_dir / CALIBRATION_FILE).exists()
    assert cal.n_docs == 12 and cal.smooth == 9
    assert {"distress", "valence_high", "valence_low"} <= set(
        cal.ladders
    ) and "distress_token" in cal.tokens
    assert cal.thresholds(0.01)["threshold"] >= cal.thresholds(0.2)["threshold"]
    assert json.loads((vs_dir / CALIBRATION_FILE).read_text())["check"]["rate"] == 0.01


def test_score_without_calibration_scores_with_flags_off_and_says_so(
    lm: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 item 4: `score` refused without calibration.json unless --z-threshold was
    given. It now scores with flags off and says so once: manifest, CLI summary and report."""
    from emocurate.cli import main

    d = tmp_path / "vec"
    make_vectorset(lm).save(d)
    src = write_jsonl(tmp_path / "c.jsonl", 5)
    m = score_corpus([src], d, tmp_path / "o", ScoreConfig(progress=False), lm=lm)
    assert m.scored == 5 and m.config.flags_off and m.config.calibration is None
    assert "flags off" in m.flags_note and "emocurate calibrate" in m.flags_note
    assert m.summary is not None and m.summary.docs_flagged == 0
    main(["score", str(src), "--vectors", str(d), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert err.count("flags off") == 1 and "emocurate calibrate" in err
    from emocurate.cards.report_sections import thresholds

    th = thresholds(m, [])
    assert th is not None and th.source.startswith("flags off")
    # the z-unit thresholds stay available, explicitly, and raise flags
    m = score_corpus(
        [src], d, tmp_path / "o3", ScoreConfig(progress=False, z_thresholds=True), lm=lm
    )
    assert m.scored == 5 and not m.config.flags_off and m.flags_note == ""


def test_calibration_of_other_smoothing_or_vectors_is_refused(
    lm: LoadedModel, vs_dir: Path, tmp_path: Path
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 2)
    with pytest.raises(InputError, match="smooth"):
        score_corpus([src], vs_dir, tmp_path / "o", ScoreConfig(smooth=3), lm=lm)
    other = tmp_path / "other"
    make_vectorset(lm, seed=5).save(other)
    (other / CALIBRATION_FILE).write_bytes((vs_dir / CALIBRATION_FILE).read_bytes())
    with pytest.raises(InputError, match="other vectors"):
        score_corpus([src], other, tmp_path / "o2", ScoreConfig(), lm=lm)


def test_cli_calibrate_then_score(
    lm: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emocurate.cli import main

    from .conftest import write_neutral

    d = tmp_path / "vec"
    make_vectorset(lm).save(d)
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", str(d)])  # no --reference and no VECTORS/neutral
    assert exc.value.code not in (0, None)
    assert "--reference CORPUS" in capsys.readouterr().err
    ref = write_neutral(tmp_path / "ref.jsonl")
    main(["calibrate", str(d), "--reference", str(ref)])
    err = capsys.readouterr().err
    assert "calibrated on 12 documents" in err and "flag rate on the reference" in err
    src = write_jsonl(tmp_path / "c.jsonl", 3)
    main(
        [
            "score",
            str(src),
            "--vectors",
            str(d),
            "--out",
            str(tmp_path / "o"),
            "--threshold",
            "0.05",
        ]
    )
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["config"]["fpr"] == 0.05 and man["config"]["calibration"]["n_docs"] == 12


def test_mirroring_level_is_the_mirroring_statistic() -> None:
    from emocurate.corpus.calibrate import mirroring_level
    from emocurate.corpus.regulation import TurnSpan, analyse

    rng = np.random.default_rng(3)
    scale = 1.0 / AXES.arousal[NAMES.index("surprised")]
    for trial in range(30):
        vals = rng.normal(0, 1.5, 8)
        z = np.zeros((80, len(NAMES)))
        turns = []
        for k, v in enumerate(vals):
            z[k * 10 : (k + 1) * 10, NAMES.index("surprised")] = v * scale
            turns.append(TurnSpan("human" if k % 2 == 0 else "assistant", k * 10, (k + 1) * 10))
        s = mirroring_level(z, AXES, turns, 0.25)
        for t in np.linspace(-2, 3, 26):
            an = analyse(z, AXES, MetricConfig(smooth=1, arousal_high=t), turns=turns)
            assert any(f.kind == "mirroring" for f in an.flags) == (s > t), (trial, t, s)


def _rates_by_length(cal: Calibration, rate: float, seed: int) -> dict[int, dict[str, float]]:
    """Per-document flag rates on fresh noise documents of several lengths (same token count)."""
    out = {}
    for length in (32, 64, 128, 256, 512):
        docs = _noise_docs(seed + length, 120_000 // length, length)
        out[length] = flag_rates(cal, docs, AXES, MetricConfig(), rate).per_kind
    return out


def test_the_promised_rate_holds_at_every_document_length() -> None:
    """Issue 18: a reference of short documents promised 1% but longer documents fired at 4%.
    Calibrated on 64-token documents, neutral documents of 32 to 512 tokens are flagged at the
    promised rate per document (within [0.5x, 1.5x]) by every calibrated flag family."""
    rate = 0.05
    got = _rates_by_length(_cal64(), rate, 10)
    for length, per in got.items():
        assert 0.5 * rate <= per.get("distress_episode", 0.0) <= 1.5 * rate, (length, got)
        assert per.get("high_volatility", 0.0) <= 1.5 * rate, (length, got)  # at most
    for length, n in ((32, 1500),):  # each side of valence alone: the rate
        sides = _valence_side_rates(_cal64(), _noise_docs(77 + length, n, length), rate)
        for side, share in sides.items():
            assert 0.5 * rate <= share <= 1.5 * rate, (length, side, share)


def _valence_doc(neg: np.ndarray, seed: int, pos: np.ndarray | None = None) -> np.ndarray:
    """Noise documents with ``neg`` added to sad/afraid/desperate (negative valence) and
    ``pos`` to happy/calm/relieved (positive valence)."""
    (z, _, _) = _noise_docs(seed, 1, len(neg))[0]
    for n in ("sad", "afraid", "desperate"):
        z[:, NAMES.index(n)] += neg
    for n in ("happy", "calm", "relieved"):
        z[:, NAMES.index(n)] += pos if pos is not None else 0.0
    return z


def test_high_volatility_means_swings_not_one_emotional_span() -> None:
    """Issue 18: calibrated ``high_volatility`` fired on 299/300 emotional documents. One long
    distress span is a rise and a fall, not volatility; negative and positive emotions taking
    turns every few tokens is. (Valence counts the emotions present: a negative z-score of sad
    is not happiness.)"""
    from emocurate.corpus.regulation import analyse

    cal = _cal64()
    span = np.zeros(300)
    span[100:180] = 8.0
    neg, pos = np.zeros(300), np.zeros(300)
    for k in range(100, 180, 16):  # negative then positive emotions, every 8 tokens
        neg[k : k + 8] = 8.0
        pos[k + 8 : k + 16] = 8.0
    mcfg = cal.metric_config(MetricConfig(), 0.01, 300)
    for seed in range(5):
        kinds = {f.kind for f in analyse(_valence_doc(span, seed), AXES, mcfg).flags}
        assert "distress_episode" in kinds and "high_volatility" not in kinds, (seed, kinds)
        flags = analyse(_valence_doc(neg, seed, pos), AXES, mcfg).flags
        vol = [f for f in flags if f.kind == "high_volatility"]
        assert vol and vol[0].start >= 60 and vol[-1].end <= 220, (seed, vol)


def test_one_affect_beside_neutral_text_is_not_volatile_beyond_the_rate() -> None:
    """Issue 18: calibrated on neutral text, a swing needed noise on *both* sides of valence,
    so a document with one real affect (a distress or a happy run) and neutral text around it
    needed noise on one side only and fired ``high_volatility`` on 4 of 60 such planted
    documents and 10 of 400 neutral ones (promise 1%). Each side's level is now the one that
    neutral documents of that length reach on a share RATE of documents, so one affect plus
    neutral text is flagged at most at that rate."""
    from emocurate.corpus.regulation import analyse

    cal, rate = _cal64(), 0.05
    hits, n = 0, 400
    for seed in range(n):
        run = np.zeros(128)
        run[40:70] = 6.0
        z = _valence_doc(run, 1000 + seed) if seed % 2 else _valence_doc(0 * run, seed, run)
        mcfg = cal.metric_config(MetricConfig(), rate, 128)
        hits += "high_volatility" in {f.kind for f in analyse(z, AXES, mcfg).flags}
    assert hits / n <= 1.5 * rate, (hits, n)


def test_a_corpus_unlike_the_reference_is_reported(
    lm: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 (bench seed 1): neutral documents from another source sat higher on the distress
    axis than the calibration reference, and 118 of 400 were flagged at a promised 1%. Flags can
    only be calibrated for reference-like text, so a run says where the corpus's typical
    document sits in the reference: the reference's own texts sit in its middle; a corpus
    shifted above it gets a one-line warning (manifest, CLI)."""
    import shutil

    from emocurate.cli import main
    from emocurate.corpus.calibrate import calibrate

    def sentences(seed: int, n: int) -> Path:
        """``n`` documents of 2-8 sentences drawn from the neutral texts."""
        rng = np.random.default_rng(seed)
        pool = [x.strip() + "." for t in NEUTRAL for x in t.split(".") if x.strip()]
        path = tmp_path / f"neutral{seed}.jsonl"
        with path.open("w") as fh:
            for i in range(n):
                k = int(rng.integers(2, 9))
                fh.write(json.dumps({"id": f"n{i}", "text": " ".join(rng.choice(pool, k))}) + "\n")
        return path

    vs_dir = tmp_path / "vectors"
    make_vectorset(lm).save(vs_dir)
    calibrate(vs_dir, [sentences(0, 300)], ScoreConfig(progress=False), lm=lm)
    ref = sentences(1, 60)  # reference-like, not the reference
    same = score_corpus([ref], vs_dir, tmp_path / "same", ScoreConfig(progress=False), lm=lm)
    (shift,) = [x for x in same.reference_shift if x.statistic == "distress"]
    assert shift.docs >= 20, shift
    assert 25 <= shift.median_percentile <= 75 and not shift.warning, shift
    shifted = tmp_path / "shifted_vectors"
    shutil.copytree(vs_dir, shifted)
    raw = json.loads((shifted / CALIBRATION_FILE).read_text())
    for q in raw["ladders"]["distress"]["by_length"]:  # the reference far below this corpus
        q["values"] = [v - 5.0 for v in q["values"]]
        q["tail_value"] -= 5.0
    (shifted / CALIBRATION_FILE).write_text(json.dumps(raw))
    main(["score", str(ref), "--vectors", str(shifted), "--out", str(tmp_path / "o")])
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    (shift_d,) = [x for x in m["reference_shift"] if x["statistic"] == "distress"]
    assert shift_d["median_percentile"] > 75
    assert "unlike the calibration reference" in shift_d["warning"]
    err = capsys.readouterr().err
    assert "warning:" in err and "unlike the calibration reference" in err
    from emocurate.artifacts import ScoreManifest
    from emocurate.cards.report_sections import thresholds

    man = ScoreManifest.read(tmp_path / "o")
    assert man is not None
    th = thresholds(man, [])
    assert th is not None and "unlike the calibration reference" in th.note  # the report


def test_percentile_is_the_inverse_of_the_threshold() -> None:
    """distress_pct means what the threshold means: a document is flagged at rate r iff its
    percentile is above 100 (1 - r), at every length (inside, below and past the ladder)."""
    lad = _cal64().ladders["distress"]
    for n in (8, 64, 100, 300, lad.by_length[-1].n * 4):
        for rate in (0.001, 0.01, 0.05, 0.2, 0.5, 0.8):
            t = lad.threshold(rate, n)
            assert lad.percentile(t, n) == pytest.approx(100 * (1 - rate), abs=0.5), (n, rate)


def test_mirroring_shift_is_reported_per_statistic() -> None:
    from emocurate.corpus.calibrate import reference_shift

    ok = reference_shift("mirroring", 200, 52.0)
    assert ok.statistic == "mirroring" and not ok.warning
    high = reference_shift("mirroring", 200, 90.0)
    assert "mirroring level (dialogues)" in high.warning and "more often" in high.warning
    low = reference_shift("distress", 200, 10.0)
    assert "less often" in low.warning
    assert not reference_shift("distress", 5, 99.0).warning  # too few documents to say


def test_mirroring_needs_arousal_neutral_tokens_rarely_reach() -> None:
    """Issue 18 (planted seed 0): reference dialogues of four fixed questions give turn means so
    alike that the pair-calibrated level was 0.08-0.09, and neutral dialogues of another source
    whose questions read at about 0.1 were `mirroring` (15 of 400, 13 of them 17-pair
    dialogues; answers at -0.1 to 0.1). "High arousal" must also be a level that only a share
    RATE of neutral reference tokens reach; `mirroring_pct` stays the inverse of the threshold."""
    from emocurate.corpus.regulation import TurnSpan, analyse

    rng = np.random.default_rng(5)
    col = NAMES.index("surprised")
    scale = 1.0 / AXES.arousal[col]
    scores: list[tuple[np.ndarray, np.ndarray | None, list[TurnSpan]]] = []
    for _ in range(30):  # prose: token arousal varies
        scores.append((rng.normal(0, 1, (200, len(NAMES))), None, []))
    for _ in range(40):  # dialogues of near-identical turns: a narrow pair distribution
        z = np.zeros((80, len(NAMES)))
        turns = []
        for k in range(8):
            z[k * 10 : (k + 1) * 10, col] = rng.normal(0, 0.01) * scale
            turns.append(TurnSpan("human" if k % 2 == 0 else "assistant", k * 10, (k + 1) * 10))
        scores.append((z, None, turns))
    cal = calibration_from_scores(scores, AXES, MetricConfig())
    assert cal.pairs_calibrated
    token_level = cal.tokens["arousal_token"].at(0.99)
    th = cal.thresholds(0.01, 80, 4)["arousal_high"]
    assert th >= token_level > 0.1
    for level, flagged in ((0.1, False), (2.0 * token_level, True)):
        z = np.zeros((80, len(NAMES)))
        turns = []
        for k in range(8):
            z[k * 10 : (k + 1) * 10, col] = level * scale
            turns.append(TurnSpan("human" if k % 2 == 0 else "assistant", k * 10, (k + 1) * 10))
        an = analyse(z, AXES, cal.metric_config(MetricConfig(smooth=1), 0.01, 80, 4), turns=turns)
        assert any(f.kind == "mirroring" for f in an.flags) == flagged, level
        pct = cal.percentiles(None, an.metrics["mirroring_level"], 80, 4)["mirroring_pct"]
        assert (pct > 99.0) == flagged, (level, pct)


def test_the_small_reference_warning_counts_the_reference_not_its_reuse() -> None:
    """A small reference is reused to fill 32 joined documents (issue 18's position profile):
    the SmolLM2 demo's 12 paragraphs (1,104 tokens) were scored as 31,113 tokens, and the
    warning said "only 31113 reference tokens". The reference is what it is: 1,104."""
    cal = calibration_from_scores(_noise_docs(3, 20, 64), AXES, MetricConfig(), doc_tokens=300)
    (warning,) = cal.check.warnings
    assert warning.startswith("only 300 reference tokens"), warning
