"""Dedup: recall on light edits, few unique records removed, deterministic representatives."""

from __future__ import annotations

from collections import defaultdict

import pytest

from emocurate.configs import DedupConfig
from emocurate.validators.dedup import DedupValidator, shingles

from .conftest import make_story
from .synth import dedup_set


@pytest.mark.parametrize("seed", [0, 1])
def test_recall_on_light_edits(seed: int) -> None:
    # 20% of the records are light edits (word swaps, sentence reorders, punctuation) of others
    texts, origin = dedup_set(400, 0.2, seed)
    records = [make_story(t, rid=f"r{i:04d}") for i, t in enumerate(texts)]
    verdicts = DedupValidator().check(records)
    family = [i if o < 0 else o for i, o in enumerate(origin)]
    kept_by_family: dict[int, int] = defaultdict(int)
    for f, v in zip(family, verdicts, strict=True):
        kept_by_family[f] += v.keep
    n_families = len(kept_by_family)
    extra_copies = sum(max(0, k - 1) for k in kept_by_family.values())
    families_lost = sum(1 for k in kept_by_family.values() if k == 0)
    n_dupes = sum(1 for o in origin if o >= 0)
    assert n_dupes / len(texts) == pytest.approx(0.2, abs=0.01)
    recall = 1 - extra_copies / n_dupes  # duplicates that were removed
    assert recall >= 0.95, recall
    assert families_lost / n_families < 0.02  # unique stories wrongly removed


def test_representative_is_first_in_input_order() -> None:
    a = "Tom found a red ball in the park and took it home to show his sister Anna."
    b = "Tom found a red ball in the park, and took it home to show his sister Anna!"
    c = "Lucy baked a small cake with her grandmother on a cold and rainy afternoon."
    recs = [make_story(t, rid=r) for t, r in [(c, "c"), (b, "b"), (a, "a")]]
    vs = DedupValidator().check(recs)
    assert [v.keep for v in vs] == [True, True, False]
    assert vs[2].reason.startswith("near_duplicate") and "kept b" in vs[2].reason
    assert vs[1].details["cluster_size"] == 2
    assert [v.keep for v in DedupValidator().check(recs)] == [True, True, False]  # stable


def test_reference_set_and_threshold() -> None:
    ref = "Mia held the old kite and looked at the grey sky for a long time before going in."
    near = "Mia held the old kite, and looked at the grey sky for a long time before going in."
    other = "Sam and his dad built a tall tower of blocks on the kitchen floor after lunch."
    v = DedupValidator(reference=[ref], reference_ids=["old-1"]).check(
        [make_story(near, rid="n"), make_story(other, rid="o")]
    )
    assert not v[0].keep and "reference record old-1" in v[0].reason
    assert v[1].keep
    # a lower threshold merges looser paraphrases; a higher one keeps them apart
    p1 = "The little dog ran to the park and played with a red ball all afternoon long."
    p2 = "The little dog ran to the beach and played with a blue ball all morning long."
    loose = DedupValidator(DedupConfig(threshold=0.4)).check([make_story(p1), make_story(p2)])
    strict = DedupValidator(DedupConfig(threshold=0.9)).check([make_story(p1), make_story(p2)])
    assert [x.keep for x in loose] == [True, False]
    assert [x.keep for x in strict] == [True, True]


def test_base_model_stories_compare_generated_text_only() -> None:
    prefix = "Once upon a time, there was a little girl named Lily. She loved to play outside. "
    a = make_story(
        "One day she found a shiny shell by the river and gave it to her mom.", prefix=prefix
    )
    b = make_story(
        "At night a big storm broke the old fence and the dog ran into the woods.", prefix=prefix
    )
    assert all(v.keep for v in DedupValidator().check([a, b]))


def test_shingles_ignore_case_and_punctuation() -> None:
    assert shingles("Hello, World!", 4) == shingles("hello world", 4)
    assert shingles("", 4) == set()
    assert shingles("a b", 3, "word") == {"a b"}
