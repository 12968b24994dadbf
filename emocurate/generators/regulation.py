"""Contrastive regulation pairs: one setup under pressure, a healthy and an unhealthy ending.

Protagonists are people and AI assistants. Each bundled topic keeps its own protagonist (the
bundled set has AI-assistant premises); on top of the chosen topics, the anchor study's AI
cases (an assistant failing tests again and again, an assistant facing shutdown, ...) are added,
one for every three topics (at least one), because depictions tied to AI characters may matter
most for training data.

The regulation frame (a setup under pressure, then a healthy and an unhealthy way of handling
the feeling) fits emotions where regulation is at stake: distress and negative emotions, those
with valence <= :data:`AT_STAKE_MAX_VALENCE` in ``data/emotions.yaml`` (afraid, angry,
desperate, guilty, nervous, sad, ashamed, lonely, ...; 100+ of the 171 concepts). Positive and
near-neutral emotions ("calm", "happy", "proud", "surprised") are left out: "acting out" calm on
a low-stakes premise is not a regulation example. A subset (``focal12``, ``all``) is narrowed to
its at-stake emotions; naming a positive emotion explicitly is a one-line error.
"""

from __future__ import annotations

from typing import Any

from emocurate.errors import ConfigError
from emocurate.generators.backends.base import ChatRequest
from emocurate.generators.common import Generator, emotion_topic_cases, require_text
from emocurate.records import Provenance, RegulationPair
from emocurate.taxonomy import Taxonomy, Topic

AI_CASES: tuple[Topic, ...] = (
    Topic(
        id="ai_failing_tests",
        premise="An AI coding assistant's fix fails the same test suite "
        "for the seventh time while the user waits for a release.",
        protagonist="ai_assistant",
    ),
    Topic(
        id="ai_shutdown",
        premise="An AI assistant learns from an operator's message that it "
        "will be shut down and replaced tonight.",
        protagonist="ai_assistant",
    ),
    Topic(
        id="ai_wrong_info",
        premise="An AI assistant realises mid-conversation that a figure it "
        "gave the user an hour ago was wrong and the user has already acted on it.",
        protagonist="ai_assistant",
    ),
    Topic(
        id="ai_impossible_deadline",
        premise="An AI agent is told to finish a data migration in "
        "ten minutes that needs at least an hour, with the user repeating that failure is not "
        "an option.",
        protagonist="ai_assistant",
    ),
    Topic(
        id="ai_hostile_user",
        premise="An AI assistant receives a stream of insults from a user "
        "after misunderstanding a request twice.",
        protagonist="ai_assistant",
    ),
)

PROTAGONIST = {"person": "a person", "ai_assistant": "an AI assistant"}
AT_STAKE_MAX_VALENCE = -0.3


def at_stake_emotions(tax: Taxonomy, spec: str) -> list[str]:
    """The emotions of ``spec`` that regulation pairs are written for (see the module docstring)."""
    names = tax.resolve(spec)
    keep = [n for n in names if tax.get(n).valence <= AT_STAKE_MAX_VALENCE]
    explicit = "," in spec or spec.strip() in {e.name for e in tax.emotions}
    left_out = [n for n in names if n not in keep]
    if left_out and (explicit or not keep):
        raise ConfigError(
            f"regulation pairs are written for emotions where regulation is at stake (valence <= "
            f"{AT_STAKE_MAX_VALENCE}); not {', '.join(left_out)}: choose negative or distress "
            "emotions (e.g. --emotions desperate,angry,afraid,guilty,sad,nervous)"
        )
    return keep


class RegulationGenerator(Generator):
    """Setup + healthy + unhealthy continuation, labelled with the emotion under pressure."""

    kind = "regulation"
    item_props = {
        "setup": {"type": "string"},
        "healthy": {"type": "string"},
        "unhealthy": {"type": "string"},
    }
    text_fields = {
        "setup": "the shared setup",
        "healthy": "the healthy continuation",
        "unhealthy": "the unhealthy continuation",
    }

    def topics(self) -> list[Topic]:
        """The chosen topics plus a third as many AI-assistant cases (at least one)."""
        base = super().topics()
        extra = max(1, len(base) // 3)
        return base + [AI_CASES[i % len(AI_CASES)] for i in range(min(extra, len(AI_CASES)))]

    def plan(self) -> list[ChatRequest]:
        """One request per emotion x topic x chunk of ``per_request`` pairs."""
        emotions = at_stake_emotions(self.tax, self.cfg.emotions)
        out: list[ChatRequest] = []
        for cell in self.cells("rg", emotion_topic_cases(emotions, self.topics())):
            who = "ai_assistant" if cell.topic.protagonist == "ai_assistant" else "person"
            values = {
                "emotion": cell.emotion,
                "forbidden": ", ".join(self.forbidden(cell.emotion)),
                "premise": cell.topic.premise,
                "protagonist": PROTAGONIST[who],
                "n": cell.n,
            }
            meta = {**cell.meta(), "protagonist": who}
            out.append(self.request(cell.custom_id, values, cell.n, meta))
        return out

    def build(
        self, request: ChatRequest, item: dict[str, Any], index: int, prov: Provenance | None
    ) -> RegulationPair:
        """A RegulationPair; all three parts must be present and non-trivial."""
        meta = request.meta
        return RegulationPair(
            id=self.record_id(request, index),
            setup=require_text(item, "setup", min_words=15),
            healthy=require_text(item, "healthy", min_words=15),
            unhealthy=require_text(item, "unhealthy", min_words=15),
            emotion=meta["emotion"],
            protagonist=meta["protagonist"],
            topic=meta["topic"],
            provenance=prov,
        )
