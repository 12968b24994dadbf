"""Story rubric: grades 1-5 with reasons, through the real SDKs against 127.0.0.1 fakes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from emocurate.configs import JudgeSpec, RubricConfig, ValidateConfig
from emocurate.generators.parse import ParseError
from emocurate.validators.pipeline import validate
from emocurate.validators.rubric import CRITERIA, RubricValidator, parse_rubric

from .conftest import make_dialogue, make_story, write_stage

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.llm_servers import fake_anthropic_server, fake_openai_server  # noqa: E402

GOOD = (
    "Mia walked to the end of the pier with the paper bag of crumbs her grandfather used to "
    "carry. The gulls waited on the posts. She held the bag a long time before she opened it."
)
NAMED = GOOD.replace("She held", "She felt so sad. She held")
OFF_TOPIC = "The quarterly report lists revenue by region and the new office lease terms."


def grader(body: dict[str, Any]) -> dict[str, Any]:
    """A rule-based grader that reads the brief and the story like a real one would."""
    user = next(m for m in body["messages"] if m["role"] == "user")["content"]
    if isinstance(user, list):
        user = "".join(b.get("text", "") for b in user)
    emotion = re.search(r"Intended emotion: (.*)", user).group(1)  # type: ignore[union-attr]
    story = re.search(r"<story>\n(.*)\n</story>", user, re.S).group(1).lower()  # type: ignore[union-attr]
    named = emotion in story
    off = "revenue" in story
    return {
        "names_emotion": {"score": 1 if named else 5, "reason": "says 'sad'" if named else "shown"},
        "conveys": {"score": 1 if off else 4, "reason": "no character" if off else "grief shows"},
        "on_topic": {"score": 1 if off else 5, "reason": "a business report" if off else "pier"},
        "coherent": {"score": 4, "reason": "complete"},
    }


@pytest.fixture(autouse=True)
def _keys(fake_api_keys: None) -> None:
    """Dummy keys for the SDKs (see tests/conftest.py)."""


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_rubric_grades_and_rejects_with_reasons(tmp_path: Path, flavor: str) -> None:
    ctx = fake_anthropic_server if flavor == "anthropic" else fake_openai_server
    recs = [
        make_story(GOOD, "sad", rid="good"),
        make_story(NAMED, "sad", rid="named"),
        make_story(OFF_TOPIC, "sad", rid="off"),
        make_dialogue([("human", "Can you help me?"), ("assistant", "Of course.")], rid="dlg"),
    ]
    with ctx(responder=grader) as srv:
        v = RubricValidator(
            JudgeSpec(backend=flavor, model="grader", base_url=srv.base_url),
            RubricConfig(progress=False, max_retries=1),
            cache_dir=tmp_path / "cache",
        )
        verdicts = {x.record_id: x for x in v.check(recs)}
    assert verdicts["good"].keep and verdicts["good"].score == pytest.approx(0.8)
    assert set(verdicts["good"].details["rubric"]) == set(CRITERIA)
    named = verdicts["named"]
    assert not named.keep and named.reason == "rubric: names_emotion 1/5 (says 'sad')"
    off = verdicts["off"]
    assert not off.keep and "conveys 1/5 (no character)" in off.reason
    assert "on_topic 1/5 (a business report)" in off.reason
    assert verdicts["dlg"].keep and "stories only" in verdicts["dlg"].details["note"]
    assert v.stats["below_min_by_criterion"] == {
        "names_emotion": 1,
        "conveys": 1,
        "on_topic": 1,
        "coherent": 0,
    }


def test_parse_rubric_needs_every_criterion_in_range() -> None:
    ok = {c: {"score": 3, "reason": "r"} for c in CRITERIA}
    assert parse_rubric(None, "Here: " + json.dumps(ok))["coherent"] == (3, "r")
    with pytest.raises(ParseError, match="on_topic"):
        parse_rubric({**ok, "on_topic": {"score": 9, "reason": "x"}}, "")
    with pytest.raises(ParseError, match="no JSON"):
        parse_rubric(None, "I liked it")


def test_rubric_in_the_validate_pipeline(tmp_path: Path) -> None:
    with fake_openai_server(responder=grader) as srv:
        m = validate(
            write_stage(
                tmp_path / "in",
                [make_story(GOOD, "sad", rid="a"), make_story(NAMED, "sad", rid="b")],
            ),
            tmp_path / "out",
            ValidateConfig(
                validators=["rubric"],
                judge_backend="openai",
                judge_model="grader",
                base_url=srv.base_url,
                rubric=RubricConfig(progress=False),
            ),
        )
    step = {s.step: s for s in m.funnel}["rubric"]
    assert step.rejected == 1
