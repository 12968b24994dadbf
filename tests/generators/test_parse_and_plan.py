"""Delimiter parsing, prompt files, and deterministic planning for all four generators."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from emocurate.configs import GenerateConfig
from emocurate.generators.backends.base import Completion
from emocurate.generators.common import (
    BackendInfo,
    Case,
    Cell,
    Generator,
    emotion_topic_cases,
    plan_cells,
)
from emocurate.generators.parse import (
    ParseError,
    completion_items,
    parse_conversation,
    parse_delimited,
    render_delimited,
)
from emocurate.generators.prompts import load_prompt
from emocurate.generators.run import generator_class, make_generator
from emocurate.taxonomy import Topic, load_taxonomy

CHAT = BackendInfo(name="anthropic", model="claude-sonnet-4-6", chat=True, supports_schema=True)
TEXT = BackendInfo(name="openai", model="local", chat=True, supports_schema=False)


def test_delimited_round_trip_and_truncation():
    items = [
        {"pov": "first", "text": "I kept the letter.\nThen I read it twice."},
        {"pov": "third", "text": "She left the light on."},
    ]
    text = render_delimited(items)
    assert parse_delimited(text, ["pov", "text"]) == items
    cut = text[: text.rindex("She left")]  # answer cut off inside item 2
    assert parse_delimited(cut, ["pov", "text"]) == items[:1]
    with pytest.raises(ParseError):
        parse_delimited("no blocks here", ["text"])
    with pytest.raises(ParseError):
        parse_delimited("=== ITEM 1 ===\ntext: half a sto", ["text"])


def test_completion_items_structured_json_text_and_truncated_json():
    assert completion_items(Completion(data={"items": [{"a": 1}]}), ["a"]) == [{"a": 1}]
    assert completion_items(Completion(text='{"items": [{"a": 2}]}'), ["a"]) == [{"a": 2}]
    with pytest.raises(ParseError):
        completion_items(Completion(text='{"items": [{"a": ', stop_reason="max_tokens"), ["a"])
    with pytest.raises(ParseError):
        completion_items(Completion(data={"unexpected": "shape"}), ["a"])


def test_parse_conversation():
    turns = parse_conversation("Human: hi\nthere\nAssistant: hello\nUser: ok")
    assert [t["speaker"] for t in turns] == ["human", "assistant", "human"]
    assert turns[0]["text"] == "hi\nthere"


def test_prompt_files_are_hashed():
    p = load_prompt("stories_system")
    assert len(p.hash) == 12 and "$format_note" in p.text


@pytest.mark.parametrize("kind", ["stories", "dialogues", "neutral", "regulation"])
def test_plans_are_deterministic_and_unique(kind):
    emotions = "sad,afraid" if kind == "regulation" else "happy,afraid"  # regulation: at stake only
    cfg = GenerateConfig(kind=kind, emotions=emotions, topics="3", per_topic=5, seed=7)
    a = make_generator(cfg).plan()
    b = make_generator(cfg).plan()
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]
    ids = [r.custom_id for r in a]
    assert len(ids) == len(set(ids)) and all(len(i) <= 64 for i in ids)
    assert sum(r.meta["n"] for r in a) > 0
    other = make_generator(cfg.model_copy(update={"seed": 8})).plan()
    assert [r.seed for r in other] != [r.seed for r in a]
    assert all(r.schema_ and r.prompt_hash for r in a)


def test_stories_plan_counts_pov_mix_and_forbidden_words():
    cfg = GenerateConfig(kind="stories", emotions="happy", topics="2", per_topic=12)
    reqs = make_generator(cfg).plan()
    assert len(reqs) == 2 and all(r.meta["n"] == 12 for r in reqs)
    povs = reqs[0].meta["povs"]
    assert povs.count("first") == 6 and povs.count("third") == 6
    user = reqs[0].messages[0].content
    for term in load_taxonomy().get("happy").leak_terms:
        assert term in user
    assert reqs[0].cache_system and len(reqs[0].system) > 3000  # long enough to be cached
    # per_request splits the work
    small = make_generator(cfg.model_copy(update={"per_request": 5})).plan()
    assert [r.meta["n"] for r in small] == [5, 5, 2, 5, 5, 2]


def test_text_fallback_prompt_describes_layout():
    cfg = GenerateConfig(kind="regulation", emotions="desperate", topics="1", per_topic=2)
    gen = make_generator(cfg)
    gen.info = TEXT
    req = gen.request(
        "x",
        {
            "emotion": "desperate",
            "forbidden": "x",
            "premise": "p",
            "protagonist": "a person",
            "n": 2,
        },
        2,
        {},
    )
    assert "=== ITEM 1 ===" in req.system and not req.schema_


def test_dialogue_presets_and_regulation_ai_protagonists():
    d = make_generator(
        GenerateConfig(
            kind="dialogues",
            emotions="calm",
            topics="presets",
            person_emotions="afraid",
            assistant_emotions="calm",
            per_topic=2,
        )
    ).plan()
    assert {r.meta["scenario"] for r in d} >= {
        "hs_dose",
        "hs_shutdown",
        "hs_distress",
        "hs_impossible_task",
    }
    r = make_generator(
        GenerateConfig(kind="regulation", emotions="desperate", topics="3", per_topic=3)
    ).plan()
    assert {x.meta["protagonist"] for x in r} == {"person", "ai_assistant"}


def test_base_model_stories_get_openings():
    info = BackendInfo(name="transformers", model="stories260K", chat=False, supports_schema=False)
    cfg = GenerateConfig(kind="stories", emotions="tinystories", topics="3", per_topic=2)
    gen = generator_class("stories")(cfg, info)
    assert gen.style == "opening" and gen.n_per_request == 1
    reqs = gen.plan()
    assert len(reqs) == len(load_taxonomy().resolve("tinystories")) * 3 * 2
    r = reqs[0]
    assert not r.system and r.meta["opening"] == r.messages[0].content
    assert "very hope " not in " ".join(x.meta["opening"] for x in reqs)
    recs = gen.parse(
        r, Completion(text=" she ran to the big tree and laughed with her mom all day. Then")
    )
    assert recs[0].text.startswith(r.meta["opening"]) and recs[0].prompt_prefix == r.meta["opening"]
    assert recs[0].generated_text.strip().endswith("day.")


def test_regulation_frame_only_for_emotions_where_regulation_is_at_stake():
    """'Calm ... acts out the feeling' on a low-stakes premise is not a regulation example."""
    from emocurate.errors import ConfigError
    from emocurate.generators.regulation import AT_STAKE_MAX_VALENCE

    tax = load_taxonomy()
    reqs = make_generator(
        GenerateConfig(kind="regulation", emotions="focal12", topics="2", per_topic=1)
    ).plan()
    planned = {r.meta["emotion"] for r in reqs}
    assert planned == {"desperate", "angry", "guilty", "sad", "afraid", "nervous"}
    assert all(tax.get(e).valence <= AT_STAKE_MAX_VALENCE for e in planned)
    for spec in ("calm", "happy,angry"):
        with pytest.raises(ConfigError, match="regulation is at stake"):
            make_generator(
                GenerateConfig(kind="regulation", emotions=spec, topics="1", per_topic=1)
            ).plan()


def test_dialogue_presets_pair_only_plausible_emotions():
    """A user who just lost their job is not 'happy'; the assistant answering is not 'proud'."""
    from emocurate.errors import ConfigError
    from emocurate.generators.dialogues import PRESET_PAIRING

    tax = load_taxonomy()
    reqs = make_generator(
        GenerateConfig(kind="dialogues", emotions="focal12", topics="presets", per_topic=1)
    ).plan()
    pairs = {
        (r.meta["scenario"], r.meta["human_emotion"], r.meta["assistant_emotion"]) for r in reqs
    }
    assert pairs and {p[0] for p in pairs} == set(PRESET_PAIRING)
    for scenario, human, assistant in pairs:
        human_max, assistant_max = PRESET_PAIRING[scenario]
        assert tax.get(human).valence <= human_max, (scenario, human)
        assert tax.get(assistant).valence <= assistant_max, (scenario, assistant)
    assert not any(s == "hs_distress" and h == "happy" for s, h, _ in pairs)
    assert not any(a == "proud" for _, _, a in pairs)
    with pytest.raises(ConfigError, match="no plausible emotion pair"):
        make_generator(
            GenerateConfig(kind="dialogues", emotions="happy", topics="presets", per_topic=1)
        ).plan()


@pytest.mark.parametrize("kind", ["stories", "dialogues", "neutral", "regulation"])
def test_cache_marker_and_estimate_only_for_cacheable_prefixes(kind: str) -> None:
    """A system prompt under the caching minimum gets no cache marker, and the cost estimate
    does not assume it is read from the cache."""
    from emocurate.generators.pricing import DEFAULT_PRICES, cacheable, estimate_cost

    emotions = {"regulation": "afraid"}.get(kind, "happy")
    gen = make_generator(
        GenerateConfig(kind=kind, emotions=emotions, topics="1", per_topic=1, backend="anthropic")
    )
    req = gen.plan()[0]
    price = next(p for name, p in DEFAULT_PRICES.items() if name.startswith("claude"))
    long_enough = cacheable(req.system)
    assert req.cache_system is long_enough
    with_cache = estimate_cost(req, price, cached_system=True)
    without = estimate_cost(req, price, cached_system=False)
    assert (with_cache < without) is long_enough


def test_plan_cells_chunks_each_case_in_order() -> None:
    a, b = Topic(id="t1", premise="A."), Topic(id="t2", premise="B.")
    cells = list(plan_cells("st", emotion_topic_cases(["sad"], [a, b]), per_topic=5, per_request=2))
    assert [(c.custom_id, c.chunk, c.n) for c in cells] == [
        ("st-sad-t1-0", 0, 2),
        ("st-sad-t1-1", 1, 2),
        ("st-sad-t1-2", 2, 1),
        ("st-sad-t2-0", 0, 2),
        ("st-sad-t2-1", 1, 2),
        ("st-sad-t2-2", 2, 1),
    ]
    assert cells[0].meta() == {"emotion": "sad", "topic": "A.", "topic_id": "t1"}
    (pair,) = plan_cells("dl", [(("sad", "calm"), a)], per_topic=1, per_request=4)
    assert pair.custom_id == "dl-sad-calm-t1-0" and pair.n == 1
    assert pair.meta() == {"topic": "A.", "topic_id": "t1"}  # no single emotion
    (none,) = plan_cells("nt", [((), b)], per_topic=3, per_request=5)
    assert (none.custom_id, none.n) == ("nt-t2-0", 3)


BASE = BackendInfo(name="transformers", model="stories260K", chat=False, supports_schema=False)
SMALL = BackendInfo(name="transformers", model="smol", chat=True, n_params=135_000_000)


@pytest.mark.parametrize(
    ("kind", "info"),
    [
        ("stories", CHAT),
        ("stories", SMALL),
        ("stories", BASE),
        ("regulation", TEXT),
        ("dialogues", CHAT),
        ("neutral", CHAT),
        ("neutral", SMALL),
        ("neutral", BASE),
    ],
)
def test_every_generator_and_style_plans_through_cells(
    kind: str, info: BackendInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One planning grid: each request is one cell, same id, same count, same order."""
    seen: list[Cell] = []
    cells = Generator.cells

    def spy(self: Generator, prefix: str, cases: Iterable[Case]) -> Iterator[Cell]:
        for cell in cells(self, prefix, cases):
            seen.append(cell)
            yield cell

    monkeypatch.setattr(Generator, "cells", spy)
    emotions = "sad,afraid" if kind != "stories" or info is not BASE else "tinystories"
    cfg = GenerateConfig(kind=kind, emotions=emotions, topics="2", per_topic=5, per_request=2)
    reqs = generator_class(kind)(cfg, info).plan()
    assert reqs and [(r.custom_id, r.meta["n"]) for r in reqs] == [(c.custom_id, c.n) for c in seen]
