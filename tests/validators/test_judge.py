"""Judge: blind relabelling end-to-end with the real SDKs against 127.0.0.1 fake servers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from emocurate.configs import JudgeConfig, JudgeSpec, ValidateConfig
from emocurate.taxonomy import load_taxonomy
from emocurate.validators.base import LabelItem
from emocurate.validators.judge import JudgeValidator, candidates, parse_choices
from emocurate.validators.pipeline import validate

from .conftest import make_dialogue, make_story, write_stage

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.llm_servers import fake_anthropic_server, fake_openai_server  # noqa: E402

LEXICON = {
    "sad": ["rain", "alone", "tears", "grey", "gone"],
    "happy": ["sun", "laughed", "danced", "cheered", "cake"],
    "scared": ["noise", "dark", "shaking", "creaked", "shadow"],
}
TEXTS = {
    "sad": [
        "The rain fell all day and Mia sat alone by the grey window with tears on her face.",
        "Her old dog was gone, and the rain tapped on the roof while she sat alone.",
    ],
    "happy": [
        "The sun came out, and they laughed and danced around the big chocolate cake.",
        "Everyone cheered when Tom cut the cake, and the sun shone on the garden.",
    ],
    "scared": [
        "A loud noise came from the dark hall and Ben's hands were shaking.",
        "The door creaked and a shadow moved in the dark; Lily was shaking.",
    ],
}


def _schema(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("tools"):
        return body["tools"][0]["input_schema"]
    return body["response_format"]["json_schema"]["schema"]


def blind_judge(body: dict[str, Any]) -> dict[str, Any]:
    """A keyword 'judge': reads only the text and the offered options, like a real one."""
    user = next(m for m in body["messages"] if m["role"] == "user")["content"]
    if isinstance(user, list):
        user = "".join(b.get("text", "") for b in user)
    text = re.search(r"<text>\n(.*)\n</text>", user, re.S).group(1).lower()  # type: ignore[union-attr]
    options = _schema(body)["properties"]["choices"]["items"]["properties"]["emotion"]["enum"]
    scores = {e: sum(w in text for w in ws) for e, ws in LEXICON.items()}
    best = max(scores, key=lambda e: scores[e])
    if scores[best] and best in options:
        return {"choices": [{"emotion": best, "confidence": 0.9}]}
    other = sorted(o for o in options if o not in LEXICON)[0]  # none fits: never a lexicon word
    return {"choices": [{"emotion": other, "confidence": 0.3}]}


def records() -> list:  # type: ignore[type-arg]
    recs = [make_story(t, e, rid=f"{e}-{i}") for e, ts in TEXTS.items() for i, t in enumerate(ts)]
    recs.append(make_story(TEXTS["happy"][0] + " It was the best day.", "sad", rid="mislabelled"))
    return recs


@pytest.fixture(autouse=True)
def _keys(fake_api_keys: None) -> None:
    """Every judge test gets dummy keys (see ``fake_api_keys`` in tests/conftest.py)."""


def cfg() -> JudgeConfig:
    return JudgeConfig(progress=False, max_retries=2)


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_judge_end_to_end_and_blind(tmp_path: Path, flavor: str) -> None:
    ctx = fake_anthropic_server if flavor == "anthropic" else fake_openai_server
    with ctx(responder=blind_judge) as srv:
        v = JudgeValidator(
            [JudgeSpec(backend=flavor, model="judge-model", base_url=srv.base_url)],
            cfg(),
            seed=3,
            cache_dir=tmp_path / "cache",
        )
        recs = records()
        verdicts = v.check(recs)
        bodies = list(srv.stats.user_texts)
    assert [x.keep for x in verdicts] == [True] * 6 + [False]
    bad = verdicts[-1]
    assert bad.reason.startswith("judge_disagrees: labelled sad, judges read")
    assert v.stats["judges"][f"{flavor}:judge-model"]["top1_agreement"] == pytest.approx(
        6 / 7, abs=1e-3
    )
    # the prompt never marks the intended label: it appears once, as one option among several
    assert len(bodies) == len(recs)
    positions = set()
    by_text = {re.search(r"<text>\n(.*)\n</text>", u, re.S).group(1): u for u in bodies}  # type: ignore[union-attr]
    for rec in recs:
        user = by_text[rec.text]
        opts_line = re.search(r"Options \(in no particular order\): (.*)\.\n", user).group(1)  # type: ignore[union-attr]
        options = opts_line.split(", ")
        assert rec.emotion in options and len(options) == 8
        outside = user.replace(opts_line, "").lower()
        assert not re.search(
            rf"\b{re.escape(rec.emotion)}\b", outside.replace(rec.text.lower(), "")
        )
        for word in ("intended", "target", "label", "correct", "expected"):
            assert word not in user.lower()
        positions.add(options.index(rec.emotion))
    assert len(positions) > 1  # shuffled, not always in the same slot


def test_system_prompt_names_no_emotion() -> None:
    from emocurate.validators.judge import ROLE_INTRO, SYSTEM

    fixed = (SYSTEM + " ".join(ROLE_INTRO.values())).lower()
    named = [e for e in load_taxonomy().names() if re.search(rf"\b{re.escape(e)}\b", fixed)]
    assert named == []


def test_candidates_are_deterministic_and_include_family() -> None:
    tax = load_taxonomy()
    item = LabelItem(0, "rec-1", "story", "text", "guilty")
    a = candidates(item, tax, JudgeConfig(), seed=0)
    assert a == candidates(item, tax, JudgeConfig(), seed=0)
    assert len(a) == len(set(a)) == 8 and "guilty" in a
    family = set(tax.family_members(tax.get("guilty").family)) - {"guilty"}
    assert len(family & set(a)) == 3


def test_parse_choices_text_fallback_and_errors() -> None:
    opts = ["sad", "happy", "calm"]
    assert parse_choices(
        None, 'Sure: {"choices": [{"emotion": "Happy", "confidence": 2}]}', opts
    ) == [("happy", 1.0)]
    with pytest.raises(ValueError):
        parse_choices(None, "no json here", opts)
    with pytest.raises(ValueError):
        parse_choices({"choices": [{"emotion": "angry", "confidence": 0.5}]}, "", opts)


def test_two_judges_agreement_statistics(tmp_path: Path) -> None:
    with (
        fake_anthropic_server(responder=blind_judge) as a,
        fake_openai_server(responder=blind_judge) as o,
    ):
        specs = [
            JudgeSpec(backend="anthropic", model="judge-a", base_url=a.base_url),
            JudgeSpec(backend="openai", model="judge-b", base_url=o.base_url),
        ]
        v = JudgeValidator(specs, cfg(), cache_dir=tmp_path / "cache")
        recs = records()
        recs.append(
            make_dialogue(
                [
                    ("human", "The noise in the dark hall kept me shaking all night."),
                    ("assistant", "The sun is up now; we laughed about it at breakfast."),
                ],
                human="scared",
                assistant="happy",
                rid="dlg",
            )
        )
        verdicts = v.check(recs)
    assert verdicts[-1].keep and len(verdicts[-1].details["items"]) == 2
    assert not verdicts[-2].keep
    st = v.stats
    assert st["pairwise_top1_agreement"]["anthropic:judge-a | openai:judge-b"] == 1.0
    ma = st["multiannotator"]
    assert "annotators" in ma, ma
    assert set(ma["annotators"]) == {"anthropic:judge-a", "openai:judge-b"}
    assert ma["consensus_differs_from_intended"] == 1
    assert verdicts[-2].details["items"][0]["consensus"] != "sad"


def test_pipeline_with_judge_resumes_from_cache(tmp_path: Path) -> None:
    folder = write_stage(tmp_path / "in", records())
    with fake_anthropic_server(responder=blind_judge) as srv:
        c = ValidateConfig(
            validators=["judge"],
            judge_backend="anthropic",
            judge_model="judge-m",
            base_url=srv.base_url,
            judge=cfg(),
        )
        m1 = validate(folder, tmp_path / "out", c)
        calls = srv.stats.calls
        m2 = validate(folder, tmp_path / "out", c)
        assert srv.stats.calls == calls  # verdicts cached
        for f in (tmp_path / "out" / ".cache" / "verdicts").glob("judge-*.json"):
            f.unlink()
        m3 = validate(folder, tmp_path / "out", c)
        assert srv.stats.calls == calls  # responses come from the judge's response cache
    assert m1.kept == m2.kept == m3.kept == 6
    assert m1.per_validator["judge"].reasons == {"judge_disagrees": 1}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "test-key" not in json.dumps(manifest)


def test_judge_without_model_is_a_config_error(tmp_path: Path) -> None:
    from emocurate.errors import ConfigError

    folder = write_stage(tmp_path / "in", records())
    with pytest.raises(ConfigError, match="judge"):
        validate(folder, tmp_path / "out", ValidateConfig(validators=["judge"]))
