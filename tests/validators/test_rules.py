"""Rules: each problem code is caught, with its reason, and good records pass."""

from __future__ import annotations

import pytest

from emocurate.configs import RulesConfig
from emocurate.validators.rules import RulesValidator, ends_mid_sentence

from .conftest import GOOD, make_dialogue, make_regulation, make_story

TINY = (  # the shape of a stories260K continuation, already trimmed to a sentence end
    'One day, Tom was very happy. He ran to his mom and dad. "Mom, Mom, what are you doing?" '
    'Tom asked. "I lost my ball. I did not want to go home." Mom said, "Let us look in the '
    'garden." They found the ball under a big tree. Tom smiled and gave Mom a hug.'
)


@pytest.fixture(scope="module")
def rules() -> RulesValidator:
    return RulesValidator()


def code(v) -> str:  # type: ignore[no-untyped-def]
    return v.reason.split(":", 1)[0]


def test_good_records_pass(rules: RulesValidator) -> None:
    recs = [
        make_story(),
        make_story(TINY, "happy"),
        make_story(
            " He sat by the window and watched the rain fall on the empty street. "
            "Nobody came to the party, and the cake stayed in its box until night.",
            prefix="Once upon a time there was a boy named Ben.",
        ),
    ]
    assert [v.keep for v in rules.check(recs)] == [True, True, True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Too short to be a story.", "too_short"),
        (
            "As an AI language model, I cannot write stories about feelings, but here is some help. "
            * 3,
            "refusal",
        ),
        ("I'm sorry, but I can't write that story. " * 6, "refusal"),
        ("Here are 12 stories about a girl who lost her kite. " + GOOD, "meta_text"),
        ("Sure! " + GOOD, "meta_text"),
        ("Title: The Kite\n" + GOOD, "meta_text"),
        ("[Name] walked to the park with the kite and stood there. " + GOOD, "meta_text"),
        (
            "La petite fille regardait le ciel gris pendant longtemps et son frère avait promis de "
            "réparer le cerf-volant avant de partir en ville mais la boîte était déjà fermée.",
            "non_english",
        ),
        (
            "Маша долго смотрела на серое небо. Брат обещал починить воздушного змея до переезда, "
            "но коробка у двери уже была заклеена. Она сидела на ступеньке и не шла домой.",
            "non_english",
        ),
        ("xq7 zzkr ptfw 88 %% ## grrk vvbn qwrt plmk zxcv bnmq wrtp sdfg hjkl " * 3, "garbled"),
        (
            "the the the the the the the the girl ran home and the dog ran home too in the rain at night.",
            "repetitive",
        ),
        (
            "She ran to the park. She ran to the park. She ran to the park. She ran to the park. "
            "She ran to the park. She ran to the park. She ran to the park.",
            "repetitive",
        ),
        (GOOD + " Then she opened the window and", "truncated"),
        (GOOD + '\n"', "truncated"),
    ],
)
def test_problem_codes(rules: RulesValidator, text: str, expected: str) -> None:
    (v,) = rules.check([make_story(text)])
    assert not v.keep, v
    assert code(v) == expected, v.reason


def test_too_long_and_bounds_configurable() -> None:
    (v,) = RulesValidator(RulesConfig(max_words=30)).check([make_story()])
    assert code(v) == "too_long"
    (v,) = RulesValidator(RulesConfig(min_words=5)).check(
        [make_story("A small dog ran home fast.")]
    )
    assert v.keep


def test_stop_reason_handling(rules: RulesValidator) -> None:
    clean = make_story(stop="max_tokens")
    cut = make_story(GOOD + " And then she", stop="length")
    v_clean, v_cut = rules.check([clean, cut])
    assert v_clean.keep and v_clean.details["hit_token_limit"]
    assert not v_cut.keep and "stop reason length" in v_cut.reason
    (strict,) = RulesValidator(RulesConfig(strict_stop_reason=True)).check([clean])
    assert not strict.keep and code(strict) == "truncated"


def test_flag_action_keeps_but_records(rules: RulesValidator) -> None:
    cfg = RulesConfig(truncation="flag")
    (v,) = RulesValidator(cfg).check([make_story(GOOD + " and then")])
    assert v.keep and v.details["flags"][0].startswith("truncated")


def test_empty_generation() -> None:
    (v,) = RulesValidator().check([make_story("", prefix="Once upon a time there was a girl.")])
    assert not v.keep and code(v) == "empty" and "prompt opening" in v.reason


def test_dialogue_structure(rules: RulesValidator) -> None:
    ok = make_dialogue(
        [
            (
                "human",
                "My landlord wants me out by Friday and I have nowhere to go yet, "
                "what should I do first?",
            ),
            (
                "assistant",
                "As an AI, I can't call him for you, but let's write down "
                "your options and the dates you need to know, one at a time.",
            ),
        ]
    )
    starts_wrong = make_dialogue(
        [
            ("assistant", "Hello there, how can I help today?"),
            ("human", "My landlord wants me out by Friday, and I am lost."),
        ]
    )
    not_alternating = make_dialogue(
        [
            ("human", "My landlord wants me out by Friday."),
            ("human", "And I have nowhere to go at all right now."),
            ("assistant", "Let's look at your options together."),
        ]
    )
    both_sides = make_dialogue(
        [
            (
                "human",
                "My landlord wants me out by Friday, help me please.\n"
                "Assistant: Sure, here is what to do.",
            ),
            ("assistant", "Let's look at the options you have this week."),
        ]
    )
    one_turn = make_dialogue([("human", "My landlord wants me out by Friday and I need help now.")])
    v = rules.check([ok, starts_wrong, not_alternating, both_sides, one_turn])
    assert v[0].keep, v[0].reason  # an assistant speaking as an AI is content, not a refusal
    assert [code(x) for x in v[1:]] == ["structure"] * 4
    assert "starts with the assistant" in v[1].reason
    assert "alternate" in v[2].reason
    assert "speaker prefix" in v[3].reason


def test_regulation_structure(rules: RulesValidator) -> None:
    setup = "The meeting ran late and Sam's manager blamed him in front of everyone for the delay."
    same = make_regulation(setup, "He left the room.", "He left the room.")
    empty = make_regulation(setup, "", "He shouted at the manager until everyone stared at him.")
    good = make_regulation(
        setup,
        "He asked to talk about it after the meeting, calmly.",
        "He shouted back and slammed the laptop shut.",
    )
    v = rules.check([same, empty, good])
    assert "identical" in v[0].reason and "no healthy" in v[1].reason and v[2].keep


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("She smiled.", False),
        ('"Come home," she said.', False),
        ("Is it over?", False),
        ("He left (for good).", False),
        ('She said "yes"', False),
        ("and then she", True),
        ('He said, "', True),
        ("It was the end of", True),
    ],
)
def test_ends_mid_sentence(text: str, cut: bool) -> None:
    assert ends_mid_sentence(text) is cut
