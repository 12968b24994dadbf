"""Leakage: the table of positive and negative cases from the issue, plus record-level scope."""

from __future__ import annotations

import pytest

from emocurate.configs import LeakageConfig
from emocurate.validators.leakage import LeakageValidator, find_leaks

from .conftest import make_dialogue, make_regulation, make_story

# (emotion, text, expected matched term or None). Terms come from the bundled taxonomy.
CASES: list[tuple[str, str, str | None]] = [
    # plain forms, case, punctuation around the word
    ("sad", "She felt sad.", "sad"),
    ("sad", "SAD was all he could say", "sad"),
    ("sad", "It was a sad, grey day", "sad"),
    ("sad", "The news would sadden anyone.", "sadden"),
    ("sad", "It saddened him.", "saddened"),
    ("sad", "Sadly, it rained.", "sadly"),
    ("sad", "Her sadness grew.", "sadness"),
    ("sad", "a sad-looking dog", "sad"),
    ("sad", "She was unhappy at school.", "unhappy"),
    ("sad", "the dog\u2019s sad\u2019s tail", "sad"),
    ("sad", "\uff53\uff41\uff44 in full width", "sad"),
    # near misses: letters inside other words
    ("sad", "Sadie went home.", None),
    ("sad", "He sat in the saddle.", None),
    ("sad", "The Sadducees argued.", None),
    ("angry", "He was mad at her.", "mad"),
    ("angry", "His anger flared.", "anger"),
    ("angry", "She spoke ANGRILY.", "angrily"),
    ("angry", "The nomads moved on.", None),
    ("angry", "Madison laughed.", None),
    ("angry", "Danger was near.", None),
    ("angry", "A stranger waved.", None),
    # multi-word forms with space/hyphen variation
    ("at ease", "She felt at ease.", "at ease"),
    ("at ease", "She felt at   ease now", "at ease"),
    ("at ease", "an at-ease smile", "at ease"),
    ("at ease", "AT EASE, soldier", "at ease"),
    ("at ease", "The disease spread.", None),
    ("at ease", "They sat at the table with ease.", None),
    ("on edge", "He was on edge all day.", "on edge"),
    ("on edge", "an on-edge feeling", "on edge"),
    ("on edge", "the edge of the table", None),
    ("on edge", "He stood on the edge.", None),
    # hyphenated forms: space, solid, dash variants
    ("self-conscious", "she felt self conscious", "self-conscious"),
    ("self-conscious", "a selfconscious laugh", "self-conscious"),
    ("self-conscious", "Self-Consciousness crept in", "self-consciousness"),
    ("self-conscious", "self\u2013conscious", "self-conscious"),
    ("self-conscious", "conscious of herself", None),
    ("heartbroken", "a broken hearted boy", "broken-hearted"),
    ("heartbroken", "brokenhearted", "broken-hearted"),
    ("heartbroken", "a broken heart", None),
    # synonyms and their near misses
    ("happy", "She was glad.", "glad"),
    ("happy", "Gladys smiled.", None),
    ("happy", "the happiest day", "happiest"),
    ("happy", "an unhappy child", None),
    ("happy", "the happy-go-lucky dog", "happy"),
    ("tired", "she was TIRED.", "tired"),
    ("tired", "worn-out", "worn out"),
    ("tired", "the retired teacher", None),
    ("scared", "a scary night", "scary"),
    ("scared", "the scarecrow stood", None),
    ("hope", "Hopewell Street", None),
    ("hope", "she hoped so", "hoped"),
    ("calm", "the becalmed ship", None),
    ("calm", "she calmly waited", "calmly"),
    ("afraid", "a fearless girl", None),
    ("afraid", "Fear filled the room", "fear"),
]


@pytest.fixture(scope="module")
def validator() -> LeakageValidator:
    return LeakageValidator()


def test_table_is_big_enough() -> None:
    assert sum(1 for c in CASES if c[2]) >= 20
    assert sum(1 for c in CASES if c[2] is None) >= 20


@pytest.mark.parametrize(("emotion", "text", "expected"), CASES)
def test_leak_table(
    validator: LeakageValidator, emotion: str, text: str, expected: str | None
) -> None:
    leaks = find_leaks(text, validator.terms(emotion))
    if expected is None:
        assert leaks == [], f"false hit {leaks} in {text!r}"
    else:
        assert leaks, f"missed {expected!r} in {text!r}"
        assert leaks[0].term == expected


def test_span_points_at_the_match(validator: LeakageValidator) -> None:
    text = "It was a long day and Tom felt sad when the bus left."
    (leak,) = find_leaks(text, validator.terms("sad"))
    assert text[leak.start : leak.end] == "sad"


def test_inflect_option_adds_regular_suffixes() -> None:
    plain = LeakageValidator()
    infl = LeakageValidator(LeakageConfig(inflect=True))
    text = "Her jealousness showed."
    assert find_leaks(text, plain.terms("jealous")) == []
    assert find_leaks(text, infl.terms("jealous"), inflect=True)


def test_story_checks_only_generated_text(validator: LeakageValidator) -> None:
    prefix = "Once upon a time there was a sad little girl named Lily."
    clean = make_story(
        " She looked at the rain and hugged her bear for a long time.", prefix=prefix
    )
    leaky = make_story(" She felt sad and hugged her bear.", prefix=prefix)
    v_clean, v_leaky = validator.check([clean, leaky])
    assert v_clean.keep
    assert not v_leaky.keep
    assert "'sad'" in v_leaky.reason
    span = v_leaky.details["spans"][0]
    assert leaky.generated_text[span["start"] : span["end"]] == "sad"


def test_dialogue_scope(validator: LeakageValidator) -> None:
    # the assistant names the human's emotion: a leak with scope "all", not with "own"
    d = make_dialogue(
        [
            ("human", "My exam is tomorrow and I keep checking the clock."),
            ("assistant", "I can tell you're worried. Let's make a plan together."),
        ],
        human="worried",
        assistant="calm",
    )
    (v_all,) = validator.check([d])
    assert not v_all.keep and "turn 1 (assistant)" in v_all.reason
    (v_own,) = LeakageValidator(LeakageConfig(dialogue_scope="own")).check([d])
    assert v_own.keep
    own = make_dialogue([("human", "I'm so worried about tomorrow."), ("assistant", "Let's plan.")])
    (v,) = LeakageValidator(LeakageConfig(dialogue_scope="own")).check([own])
    assert not v.keep and "turn 0 (human)" in v.reason


def test_regulation_checks_setup_only(validator: LeakageValidator) -> None:
    named = make_regulation(
        "Sam was angry when the bus left without him.", "He breathed.", "He kicked it."
    )
    labelled = make_regulation(
        "The bus left without Sam.", "I notice I'm angry; I'll walk.", "He kicked it."
    )
    v1, v2 = validator.check([named, labelled])
    assert not v1.keep and v2.keep


def test_unknown_emotion_is_a_rejection_not_a_crash(validator: LeakageValidator) -> None:
    (v,) = validator.check([make_story(emotion="blorft")])
    assert not v.keep and v.reason.startswith("unknown_emotion")
