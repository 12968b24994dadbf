"""Probe: cross-validated probabilities into cleanlab flag flipped labels, with a suggestion."""

from __future__ import annotations

import random

import pytest

from emocurate.configs import ProbeConfig
from emocurate.validators.probe import ProbeValidator

from .conftest import make_story
from .synth import labelled_stories


def flipped_records(n_per: int, frac: float, seed: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    pairs = labelled_stories(n_per, seed)
    emotions = sorted({e for _, e in pairs})
    flips = set(rng.sample(range(len(pairs)), round(frac * len(pairs))))
    recs = []
    for i, (text, e) in enumerate(pairs):
        label = rng.choice([x for x in emotions if x != e]) if i in flips else e
        recs.append(make_story(text, label, rid=f"r{i:03d}"))
    return recs, flips, pairs


def test_tfidf_probe_finds_flipped_labels() -> None:
    recs, flips, pairs = flipped_records(30, 0.1, 0)
    v = ProbeValidator(ProbeConfig(model="tfidf"))
    verdicts = v.check(recs)
    flagged = {i for i, x in enumerate(verdicts) if not x.keep}
    assert len(flagged & flips) / len(flips) >= 0.7  # recall
    assert len(flagged & flips) / max(len(flagged), 1) >= 0.6  # precision
    for i in flagged & flips:
        assert verdicts[i].details["suggested"] == pairs[i][1]  # suggests the true emotion
        assert verdicts[i].reason.startswith("label_issue: labelled")
    assert v.stats["cv_accuracy"] > 0.7


def test_embedded_model_probe_runs_and_beats_chance() -> None:
    recs, flips, _ = flipped_records(20, 0.15, 1)
    v = ProbeValidator(ProbeConfig(model="stories260K"))
    verdicts = v.check(recs)
    assert len(verdicts) == len(recs)
    assert v.stats["probed_texts"] == len(recs) and v.stats["classes"] == 3
    scores = [x.score for x in verdicts]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    # flipped labels get lower label-quality scores than clean ones on average
    flipped = [scores[i] for i in flips]
    clean = [s for i, s in enumerate(scores) if i not in flips]
    assert sum(flipped) / len(flipped) < sum(clean) / len(clean)  # type: ignore[arg-type]


def test_small_classes_are_skipped_not_flagged() -> None:
    recs, _, _ = flipped_records(6, 0.0, 2)
    recs.append(make_story(recs[0].text, "lonely", rid="lonely-1"))
    v = ProbeValidator(ProbeConfig(model="tfidf", min_per_class=5))
    verdicts = v.check(recs)
    assert verdicts[-1].keep and "fewer than 5" in verdicts[-1].details["note"]
    (only,) = ProbeValidator(ProbeConfig(model="tfidf")).check([recs[0]])
    assert only.keep and "fewer than 2 emotions" in only.details["note"]


@pytest.mark.parametrize("reject", [True, False])
def test_reject_switch(reject: bool) -> None:
    recs, flips, _ = flipped_records(20, 0.1, 3)
    verdicts = ProbeValidator(ProbeConfig(model="tfidf", reject=reject)).check(recs)
    flagged = [x for x in verdicts if "suggested" in x.details]
    assert flagged
    assert all(x.keep is (not reject) for x in flagged)


def test_uninformative_probe_does_not_reject() -> None:
    # labels unrelated to the text: the probe cannot beat the majority class, so no rejections
    recs, _, _ = flipped_records(20, 0.0, 4)
    rng = random.Random(4)
    shuffled = [
        r.model_copy(update={"emotion": rng.choice(["sad", "happy", "scared"])}) for r in recs
    ]
    v = ProbeValidator(ProbeConfig(model="tfidf"))
    verdicts = v.check(shuffled)
    assert v.stats["informative"] is False
    assert all(x.keep for x in verdicts)
    noted = [x for x in verdicts if "flag" in x.details]
    assert all("not evidence" in x.details["note"] for x in noted)
