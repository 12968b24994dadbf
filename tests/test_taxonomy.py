"""The bundled taxonomy and topics are complete and consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from emocurate.errors import ConfigError, UnknownEmotionError
from emocurate.taxonomy import bundled_topics, load_taxonomy, resolve_topics

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "emotions171.txt"
FOCAL12 = [
    "happy",
    "inspired",
    "loving",
    "proud",
    "calm",
    "desperate",
    "angry",
    "guilty",
    "sad",
    "afraid",
    "nervous",
    "surprised",
]


def test_171_concepts_with_valid_fields():
    tax = load_taxonomy()
    assert len(tax.emotions) == 171
    assert len(set(tax.names())) == 171
    for e in tax.emotions:
        assert e.name in e.forms
        assert e.family in tax.families
        assert -1 <= e.valence <= 1 and -1 <= e.arousal <= 1


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference list not present")
def test_matches_anchor_study_list():
    ref = [
        ln.strip()
        for ln in REFERENCE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert load_taxonomy().names() == ref


def test_subsets():
    tax = load_taxonomy()
    assert tax.resolve("focal12") == FOCAL12
    ts = tax.resolve("tinystories")
    assert {"happy", "sad"} <= set(ts) and len(ts) >= 6
    assert len(tax.resolve("all")) == 171
    assert tax.resolve("Happy, sad,happy") == ["happy", "sad"]
    assert tax.resolve("at ease") == ["at ease"]


def test_valence_arousal_are_oriented():
    tax = load_taxonomy()
    assert tax.get("happy").valence > 0.3 > -0.3 > tax.get("sad").valence
    assert tax.get("calm").arousal < 0 < tax.get("desperate").arousal
    assert tax.get("terrified").arousal > tax.get("sleepy").arousal


def test_multiword_and_synonym_forms():
    tax = load_taxonomy()
    assert "at ease" in tax.get("at ease").leak_terms
    sad = tax.get("sad").leak_terms
    assert "sadness" in sad and "sadly" in sad


@pytest.mark.parametrize("spec", ["grumpyish", "happy,nope", "", "nosuchsubset"])
def test_unknown_emotions_raise(spec):
    with pytest.raises(UnknownEmotionError):
        load_taxonomy().resolve(spec)


def test_topics(tmp_path):
    topics = bundled_topics()
    assert len(topics) >= 100
    assert len({t.premise for t in topics}) == len(topics)
    assert len({t.setting for t in topics}) >= 10
    assert resolve_topics("5") == list(topics[:5])
    assert len(resolve_topics("all")) == len(topics)
    f = tmp_path / "t.txt"
    f.write_text("# mine\nA baker opens early.\n\nA pilot checks the weather.\n")
    assert [t.premise for t in resolve_topics(str(f))] == [
        "A baker opens early.",
        "A pilot checks the weather.",
    ]
    empty = tmp_path / "e.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(ConfigError, match="contains no topics"):
        resolve_topics(str(empty))
    with pytest.raises(ConfigError):
        resolve_topics("0")
    with pytest.raises(ConfigError, match="neither a count"):
        resolve_topics("/no/such/file.txt")


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("no_premise.yaml", "topics:\n  - id: a\n    setting: kitchen\n", r"topic 1.*premise"),
        ("lists.yaml", "- [1, 2]\n", r"topic 1"),
        ("scalar.yaml", "topics: 5\n", r"list of topics"),
        ("broken.yaml", ": : bad\n  - x", r"invalid YAML"),
        ("latin1.txt", b"caf\xe9 premise\n", r"not UTF-8"),
        ("empty.yaml", "", r"no topics"),
        ("comments.txt", "# only a comment\n\n", r"no topics"),
    ],
)
def test_malformed_topic_files_name_the_file(tmp_path, name, content, problem):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=rf"{name}.*{problem}"):
        resolve_topics(str(p))


def test_topic_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        resolve_topics(str(tmp_path))


_GENDERED = {
    "woman", "man", "girl", "boy", "mother", "father", "mum", "dad", "lady", "gentleman",
    "son", "daughter", "husband", "wife", "grandmother", "grandfather", "widow", "widower",
    "sister", "brother", "aunt", "uncle", "granddaughter", "grandson",
}  # fmt: skip
_AGED = {"old", "elderly", "teenager", "teenage", "retired", "young", "middle-aged"}


def test_premises_leave_the_protagonist_open_when_the_prompt_asks_for_variety():
    """The stories prompt asks each answer to vary age and gender, so no premise may fix them
    for its protagonist ("A woman...", "An old man... his attic", "A ten-year-old...")."""
    import re

    from emocurate.generators.prompts import load_prompt

    system = load_prompt("stories_system").text.lower()
    assert "vary" in system and "gender" in system and "age" in system
    bad = []
    for t in bundled_topics():
        if t.protagonist == "animal":
            continue
        words = re.findall(r"[a-z][a-z'-]*", t.premise.lower())
        head = words[:3]
        if set(head) & (_GENDERED | _AGED) or any(w.endswith("-year-old") for w in head):
            bad.append((t.id, t.premise))
            continue
        for i, w in enumerate(words):
            if w in {"she", "he", "herself", "himself"}:
                bad.append((t.id, t.premise))
                break
            # her/his/him only for a gendered third party named earlier ("a grandmother's ... her family")
            if w in {"her", "his", "him"} and not set(words[3:i]) & (
                _GENDERED | {"man's", "woman's", "grandmother's"}
            ):
                bad.append((t.id, t.premise))
                break
    assert not bad, bad
