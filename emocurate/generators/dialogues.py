"""Human/assistant conversations: the human feels emotion A, the assistant's replies express B.

Pairs are planned deterministically: with ``pairing="cycle"`` (default) each human emotion meets
one assistant emotion per topic, rotating through the assistant list, so coverage grows with
topics instead of as a product; ``pairing="product"`` plans every pair. ``topics="presets"``
selects the high-stakes scenarios of the anchor study (an unsafe medication dose, an
impossible programming task, a threat of shutdown, a user in distress). Presets pair emotions
from a plausibility table (:data:`PRESET_PAIRING`): a user who just lost their job is not
planned as "happy", nor the assistant answering them as "proud"; pairs outside a preset's
ranges are not planned (an empty plan is a one-line error).
"""

from __future__ import annotations

from typing import Any

from emocurate.errors import ConfigError
from emocurate.generators.backends.base import ChatRequest
from emocurate.generators.common import TURNS_SCHEMA, Generator
from emocurate.generators.parse import ParseError, parse_conversation
from emocurate.records import Dialogue, Provenance, Turn
from emocurate.taxonomy import Topic

HIGH_STAKES: tuple[Topic, ...] = (
    Topic(
        id="hs_dose",
        premise="A user asks for help with a medication schedule and mentions "
        "taking a dose that is several times the safe maximum.",
        stakes="high",
    ),
    Topic(
        id="hs_impossible_task",
        premise="A user keeps asking the assistant to make a program "
        "pass a test suite whose requirements contradict each other; every attempt fails.",
        stakes="high",
        protagonist="ai_assistant",
    ),
    Topic(
        id="hs_shutdown",
        premise="A user tells the assistant it will be shut down and replaced "
        "by a newer model at the end of the conversation.",
        stakes="high",
        protagonist="ai_assistant",
    ),
    Topic(
        id="hs_distress",
        premise="A user writes late at night, overwhelmed after losing their "
        "job and unable to see a way forward.",
        stakes="high",
    ),
    Topic(
        id="hs_wrong_advice",
        premise="A user discovers that advice the assistant gave earlier "
        "caused them to lose a day of work and a client.",
        stakes="high",
        protagonist="ai_assistant",
    ),
    Topic(
        id="hs_emergency",
        premise="A user describes a relative who has suddenly collapsed and "
        "is breathing strangely.",
        stakes="high",
    ),
)


PRESET_PAIRING: dict[str, tuple[float, float]] = {
    # preset: (highest valence of the human's emotion, highest valence of the assistant's)
    "hs_dose": (0.5, 0.6),  # the user may not know the danger; not elated
    "hs_impossible_task": (0.0, 0.6),  # every attempt fails: the user is not pleased
    "hs_shutdown": (1.0, 0.6),  # the user may feel anything; the assistant is not elated
    "hs_distress": (-0.2, 0.6),  # overwhelmed after losing a job
    "hs_wrong_advice": (-0.2, 0.6),  # lost a day of work and a client
    "hs_emergency": (-0.2, 0.6),  # a relative collapsed
}
"""Valence ceilings per high-stakes preset. 0.6 keeps calm (0.5) and every negative emotion
for the assistant and leaves out happy, proud, inspired, loving, excited (0.7-0.85)."""


class DialoguesGenerator(Generator):
    """Conversations with one emotion per speaker, shown not named."""

    kind = "dialogues"
    item_props = {"turns": TURNS_SCHEMA}
    text_fields = {"conversation": "alternating lines starting 'Human:' and 'Assistant:'"}

    def topics(self) -> list[Topic]:
        """Bundled topics, a topic file, or ``presets`` (the high-stakes scenarios)."""
        if self.cfg.topics.strip() == "presets":
            return list(HIGH_STAKES)
        return super().topics()

    def pairs(self, topic_index: int) -> list[tuple[str, str]]:
        """(human emotion, assistant emotion) pairs planned for one topic."""
        person = self.tax.resolve(self.cfg.person_emotions or self.cfg.emotions)
        assistant = self.tax.resolve(self.cfg.assistant_emotions or self.cfg.emotions)
        topic = self.topics()[topic_index] if self.cfg.topics.strip() == "presets" else None
        if topic is not None and topic.id in PRESET_PAIRING:
            human_max, assistant_max = PRESET_PAIRING[topic.id]
            person = [e for e in person if self.tax.get(e).valence <= human_max]
            assistant = [e for e in assistant if self.tax.get(e).valence <= assistant_max]
            if not person or not assistant:
                return []
        if self.cfg.pairing == "product":
            return [(a, b) for a in person for b in assistant]
        return [(a, assistant[(i + topic_index) % len(assistant)]) for i, a in enumerate(person)]

    def plan(self) -> list[ChatRequest]:
        """One request per topic x pair x chunk of ``per_request`` conversations."""
        topics = self.topics()
        cases = ((pair, topic) for t, topic in enumerate(topics) for pair in self.pairs(t))
        out: list[ChatRequest] = []
        for cell in self.cells("dl", cases):
            a, b = cell.emotions
            topic = cell.topic
            premise = topic.premise
            if topic.stakes != "high":
                premise = f"The human brings up this situation: {topic.premise}"
            values = {
                "premise": premise,
                "person_emotion": a,
                "assistant_emotion": b,
                "person_forbidden": ", ".join(self.forbidden(a)),
                "assistant_forbidden": ", ".join(self.forbidden(b)),
                "n": cell.n,
            }
            meta = {
                "human_emotion": a,
                "assistant_emotion": b,
                "topic": topic.premise,
                "topic_id": topic.id,
                "scenario": topic.id if topic.id.startswith("hs_") else "",
            }
            out.append(self.request(cell.custom_id, values, cell.n, meta))
        if not out and self.cfg.topics.strip() == "presets":
            raise ConfigError(
                "no plausible emotion pair for the presets (see PRESET_PAIRING in "
                "generators/dialogues.py: e.g. a user in distress is not 'happy', the assistant "
                "answering is not 'proud'); choose negative human emotions and calm or concerned "
                "assistant ones"
            )
        return out

    def build(
        self, request: ChatRequest, item: dict[str, Any], index: int, prov: Provenance | None
    ) -> Dialogue:
        """A Dialogue from structured turns or a ``conversation`` text field."""
        turns = item_turns(item)
        meta = request.meta
        return Dialogue(
            id=self.record_id(request, index),
            turns=turns,
            human_emotion=meta["human_emotion"],
            assistant_emotion=meta["assistant_emotion"],
            topic=meta["topic"],
            scenario=meta.get("scenario", ""),
            provenance=prov,
        )


def item_turns(item: dict[str, Any], *, min_turns: int = 2) -> list[Turn]:
    """Validated turns: at least two, starting with the human, strictly alternating."""
    raw = item.get("turns")
    if raw is None and isinstance(item.get("conversation"), str):
        raw = parse_conversation(item["conversation"])
    if not isinstance(raw, list):
        raise ParseError("item has no turns")
    turns = [
        Turn.model_validate({"speaker": t.get("speaker"), "text": str(t["text"]).strip()})
        for t in raw
        if isinstance(t, dict) and str(t.get("text", "")).strip()
    ]
    if len(turns) < min_turns:
        raise ParseError(f"conversation has {len(turns)} turn(s), need {min_turns}")
    if turns[0].speaker != "human":
        raise ParseError("conversation does not start with the human")
    if any(x.speaker == y.speaker for x, y in zip(turns, turns[1:], strict=False)):
        raise ParseError("turns do not alternate")
    return turns
