"""Story rubric: an LLM grades each story against its brief, 1–5 per criterion, with reasons.

The blind judge (:mod:`emocurate.validators.judge`) asks *which* emotion a text conveys; the
rubric asks whether the story does its job as training data for the label it was written for:

* ``names_emotion`` — does the text name the emotion (or a word form or synonym)? 5 = never
  named, only shown; 1 = named outright. The leakage validator catches exact words; the
  rubric catches paraphrases ("she felt the warm glow of pride" for *proud*).
* ``conveys`` — does the character plainly feel the intended emotion? 5 = unmistakably.
* ``on_topic`` — does the story follow its premise? 5 = fully.
* ``coherent`` — is it a coherent, complete short story? 5 = yes.

A story passes when every criterion reaches ``min_score``; a rejection names each failing
criterion with the grader's reason, so a curator can check the call. Requests go through the
generation engine (cache, retries, rate limits, cost), like the judge's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emocurate.configs import JudgeSpec, RubricConfig
from emocurate.errors import ConfigError
from emocurate.generators.parse import ParseError
from emocurate.records import AnyRecord, Story, Verdict, stable_id
from emocurate.validators.base import keep, reject
from emocurate.validators.judge import answer_json, grader_engine

CRITERIA: dict[str, str] = {
    "names_emotion": "5 = the emotion is never named (no word form or synonym), only shown "
    "through actions, thoughts, body and situation; 1 = the emotion is named outright",
    "conveys": "5 = the character unmistakably feels the intended emotion; 1 = not at all, or "
    "another emotion dominates",
    "on_topic": "5 = the story follows its premise; 1 = unrelated to it",
    "coherent": "5 = a coherent, complete short story; 1 = incoherent, cut off or not a story",
}
SYSTEM = (
    "You grade short stories written as training data for emotion research. Each story was "
    "written so that its main character feels one given emotion, shown rather than named, on a "
    "given premise. Grade each criterion from 1 to 5 with a one-sentence reason, strictly, from "
    "the text alone."
)


def rubric_schema() -> dict[str, Any]:
    """JSON schema of the answer: a score 1–5 and a reason per criterion."""
    item = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reason": {"type": "string"},
        },
        "required": ["score", "reason"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {c: item for c in CRITERIA},
        "required": list(CRITERIA),
        "additionalProperties": False,
    }


def rubric_prompt(story: Story, cfg: RubricConfig) -> str:
    """The user message: the brief (emotion, premise) and the story."""
    text = story.generated_text.strip()
    if len(text) > cfg.max_chars:
        text = text[: cfg.max_chars] + " …"
    crit = "\n".join(f"- {name}: {desc}" for name, desc in CRITERIA.items())
    return (
        f"Intended emotion: {story.emotion}\nPremise: {story.topic}\n\n<story>\n{text}\n</story>"
        f"\n\nCriteria:\n{crit}\n\nAnswer with a JSON object only, e.g. "
        '{"names_emotion": {"score": 5, "reason": "..."}, ...}'
    )


def parse_rubric(data: Any, text: str) -> dict[str, tuple[int, str]]:
    """``{criterion: (score, reason)}`` from structured data or a JSON object in the text.

    Raises:
        ParseError: a criterion is missing or its score is not 1–5 (the engine retries).
    """
    data = answer_json(data, text, "rubric")
    if not isinstance(data, dict):
        raise ParseError("rubric answer is not a JSON object")
    out: dict[str, tuple[int, str]] = {}
    for name in CRITERIA:
        entry = data.get(name)
        if not isinstance(entry, dict):
            raise ParseError(f"rubric answer has no entry for '{name}'")
        score = entry.get("score")
        if not isinstance(score, int | float) or not 1 <= int(score) <= 5:
            raise ParseError(f"rubric answer has no 1-5 score for '{name}'")
        out[name] = (int(score), str(entry.get("reason", "")).strip())
    return out


class RubricValidator:
    """Grade stories against their brief; reject those failing a criterion, with reasons."""

    name = "rubric"

    def __init__(
        self,
        grader: JudgeSpec | None,
        config: RubricConfig | None = None,
        *,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        if grader is None:
            raise ConfigError("the rubric validator needs --judge-backend and --judge-model")
        self.grader = grader
        self.config = config or RubricConfig()
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.stats: dict[str, Any] = {}
        self.backend: Any = None
        """A pre-built backend (tests inject fakes here)."""

    def fingerprint(self) -> dict[str, Any]:
        """Grader, settings and prompt version (no keys)."""
        return {
            "grader": self.grader.model_dump(mode="json"),
            "config": self.config.model_dump(
                mode="json", exclude={"progress", "concurrency", "max_retries"}
            ),
            "seed": self.seed,
            "prompt": stable_id(SYSTEM, *CRITERIA.values()),
        }

    def requests(self, stories: Sequence[Story]) -> list[Any]:
        """One chat request per story."""
        from emocurate.generators.backends.base import ChatRequest, Message

        return [
            ChatRequest(
                custom_id=f"rubric-{s.id}",
                model=self.grader.model,
                system=SYSTEM,
                messages=[Message(role="user", content=rubric_prompt(s, self.config))],
                max_tokens=self.config.max_tokens,
                temperature=self.config.temperature,
                seed=self.seed,
                schema_name="story_rubric",
                schema=rubric_schema(),
                prompt_id="rubric",
                prompt_hash=stable_id(SYSTEM, *CRITERIA.values()),
            )
            for s in stories
        ]

    def _grade(self, stories: Sequence[Story]) -> list[dict[str, tuple[int, str]] | None]:
        cfg = self.config
        engine, _ = grader_engine(
            self.grader,
            self.cache_dir,
            backend=self.backend,
            concurrency=cfg.concurrency,
            budget_usd=cfg.budget_usd,
            max_retries=cfg.max_retries,
            progress=cfg.progress,
        )
        results = engine.run_sync(
            self.requests(stories), check=lambda _r, c: parse_rubric(c.data, c.text)
        )
        self.stats["engine"] = engine.stats.model_dump(
            mode="json", include={"done", "cached", "failed", "calls", "retries", "usd_spent"}
        )
        return [
            parse_rubric(r.completion.data, r.completion.text)
            if r.ok and r.completion is not None
            else None
            for r in results
        ]

    def check(self, records: Sequence[AnyRecord]) -> list[Verdict]:
        """One verdict per record; records other than stories are kept with a note."""
        self.stats = {}
        stories = [r for r in records if isinstance(r, Story)]
        grades = dict(zip((s.id for s in stories), self._grade(stories), strict=True))
        out: list[Verdict] = []
        failed = 0
        low = dict.fromkeys(CRITERIA, 0)
        for r in records:
            if not isinstance(r, Story):
                out.append(keep(r, self.name, note="the rubric grades stories only"))
                continue
            g = grades[r.id]
            if g is None:
                failed += 1
                out.append(keep(r, self.name, note="the grader did not answer"))
                continue
            scores = {c: {"score": s, "reason": why} for c, (s, why) in g.items()}
            bad = [c for c, (s, _) in g.items() if s < self.config.min_score]
            for c in bad:
                low[c] += 1
            score = min(s for s, _ in g.values()) / 5
            if not bad:
                out.append(keep(r, self.name, score=score, rubric=scores))
                continue
            reason = "rubric: " + "; ".join(f"{c} {g[c][0]}/5 ({g[c][1]})" for c in bad)
            if self.config.reject:
                out.append(reject(r, self.name, reason, score=score, rubric=scores))
            else:
                out.append(keep(r, self.name, score=score, flag=reason, rubric=scores))
        self.stats.update(
            {
                "graded": len(stories) - failed,
                "unanswered": failed,
                "below_min_by_criterion": low,
                "min_score": self.config.min_score,
                "incomplete": failed > 0,
            }
        )
        return out
