"""Emotion stories: emotion x topic x N, several per request, first/third person mixed.

Three prompt styles (``generators/style.py``). Structured: chat models get instructions (show, don't name; the emotion's forbidden words from the
taxonomy) and return several stories per request. A base model without a chat template (the
embedded stories260K) cannot follow instructions, so it gets a TinyStories-style opening that
sets up the emotion ("... Lily felt very happy because") and continues it; the opening is kept
in ``Story.prompt_prefix`` so label checks look only at what the model wrote. Simple: one
story per plain request (``prompts/stories_simple.md``), the whole answer is the story; the
forbidden words are left to the leakage validator.
"""

from __future__ import annotations

from typing import Any

from emocurate.generators.backends.base import ChatRequest
from emocurate.generators.common import Cell, Generator, emotion_topic_cases, require_text
from emocurate.generators.text import answer_text
from emocurate.records import Provenance, Story
from emocurate.taxonomy import Topic

GIRLS = ("Lily", "Mia", "Sue", "Anna", "Lucy", "Amy", "Sara", "Emma", "Kitty", "Jane")
BOYS = ("Tom", "Ben", "Tim", "Max", "Sam", "Jack", "Bob", "Leo", "Joe", "Timmy")

# Simple premises a TinyStories model knows; they read correctly after "I" or a name.
SIMPLE_PREMISES = (
    "went to the park",
    "found a big box",
    "saw a big dog",
    "lost a red ball",
    "played with a friend",
    "made a cake with mom",
    "went to the beach",
    "saw a storm",
    "got a new toy",
    "climbed a tall tree",
    "heard a loud noise",
    "went to school",
    "saw a little bird",
    "went on a boat",
    "found a shiny rock",
    "had a picnic",
    "saw a big truck",
    "went to the zoo",
    "built a tower of blocks",
    "planted a flower",
)

THIRD = (
    "Once upon a time, there was a little {kid} named {name}. One day, {name} {premise}. "
    "{name} felt very {emotion} because",
    "One day, a {kid} named {name} {premise}. {Pron} was very {emotion}. {Pron}",
    "Once upon a time, in a small town, there lived a {kid} named {name}. {name} {premise} "
    "and felt so {emotion}.",
)
# Opening words for concepts whose name is not an adjective ("felt very hope").
ADJECTIVE = {"hope": "hopeful", "grief-stricken": "grief-stricken", "at ease": "at ease"}

FIRST = (
    "My name is {name}. One day, I {premise}. I felt very {emotion} because",
    "Once upon a time, I {premise}. I was so {emotion}. I",
)


SIMPLE_NAMES = ("Maya", "Daniel", "Priya", "Tom", "Elena", "Sam", "Grace", "Omar", "Nora", "Leo")
"""A named character: without one, a small model writes "the main character" into the story."""

SIMPLE_MIN_WORDS = 40
"""Fewest words a simple-style answer must keep to count as a story (the recipe pools from
token 50; a shorter answer is retried with a moved seed)."""


class StoriesGenerator(Generator):
    """Short stories in which one character feels one emotion, shown rather than named."""

    kind = "stories"
    item_props = {
        "pov": {"type": "string", "enum": ["first", "third"]},
        "text": {"type": "string"},
    }
    text_fields = {"pov": "first or third", "text": "the story"}

    def topics(self) -> list[Topic]:
        """Bundled topics; a base model uses simple TinyStories premises when given a count."""
        spec = self.cfg.topics.strip()
        if self.style == "opening" and spec.isdigit():
            n = int(spec)
            if n < 1:
                return super().topics()
            return [
                Topic(id=f"ts{i + 1:02d}", premise=SIMPLE_PREMISES[i % len(SIMPLE_PREMISES)])
                for i in range(n)
            ]
        return super().topics()

    def plan(self) -> list[ChatRequest]:
        """One request per emotion x topic x chunk of ``per_request`` stories."""
        cells = self.cells(
            "st", emotion_topic_cases(self.tax.resolve(self.cfg.emotions), self.topics())
        )
        if self.style == "opening":
            return [self._opening(cell) for cell in cells]
        if self.style == "simple":
            return [self._simple(cell) for cell in cells]
        out: list[ChatRequest] = []
        for cell in cells:
            start = self.rng(cell.custom_id).randint(0, 1)
            povs = [("first", "third")[(start + i) % 2] for i in range(cell.n)]
            values = {
                "emotion": cell.emotion,
                "premise": cell.topic.premise,
                "n": cell.n,
                "povs": ", ".join(povs),
                "forbidden": ", ".join(self.forbidden(cell.emotion)),
            }
            out.append(self.request(cell.custom_id, values, cell.n, {**cell.meta(), "povs": povs}))
        return out

    def _simple(self, cell: Cell) -> ChatRequest:
        """One plain request per story: the premise, the emotion, the point of view."""
        rng = self.rng(cell.custom_id)
        pov = ("first", "third")[rng.randint(0, 1)]
        name = rng.choice(SIMPLE_NAMES)
        premise = cell.topic.premise.strip()
        if premise and premise[-1] not in ".!?":
            premise += "."
        values = {
            "emotion": cell.emotion,
            "premise": premise,
            "pov": pov,
            "name": name,
            "words": 120,
        }
        return self.simple_request(cell.custom_id, values, {**cell.meta(), "povs": [pov]})

    def _opening(self, cell: Cell) -> ChatRequest:
        """A base model's story opening that sets up the emotion, for it to continue."""
        rng = self.rng(cell.custom_id)
        girl = rng.random() < 0.5
        name = rng.choice(GIRLS if girl else BOYS)
        pov = "first" if rng.random() < 0.4 else "third"
        template = rng.choice(FIRST if pov == "first" else THIRD)
        topic = cell.topic
        premise = topic.premise.strip().rstrip(".")
        word = ADJECTIVE.get(cell.emotion, cell.emotion)
        kid, pron = ("girl", "She") if girl else ("boy", "He")
        if topic.id.startswith("ts") or not premise:
            opening = template.format(kid=kid, name=name, Pron=pron, premise=premise, emotion=word)
        else:
            opening = f"This is a story about {premise[0].lower() + premise[1:]}. " + (
                template.format(kid=kid, name=name, Pron=pron, premise="had a day", emotion=word)
            )
        meta = {**cell.meta(), "povs": [pov]}
        return self.opening_request(cell.custom_id, opening, "stories/opening-v1", meta)

    def build(
        self, request: ChatRequest, item: dict[str, Any], index: int, prov: Provenance | None
    ) -> Story:
        """A Story from one parsed item."""
        meta = request.meta
        povs = meta.get("povs") or ["third"]
        pov = item.get("pov")
        if pov not in ("first", "third"):
            pov = povs[min(index, len(povs) - 1)]
        return Story(
            id=self.record_id(request, index),
            text=require_text(item, "text", min_words=20),
            emotion=meta["emotion"],
            topic=meta["topic"],
            topic_id=meta.get("topic_id", ""),
            pov=pov,
            provenance=prov,
        )

    def parse(
        self, request: ChatRequest, completion: Any, prov: Provenance | None = None
    ) -> list[Any]:
        """Chat answers hold several stories; a continuation holds one (opening + new text)."""
        if request.meta.get("simple"):
            return [
                Story(
                    id=self.record_id(request, 0),
                    text=answer_text(completion.text, min_words=SIMPLE_MIN_WORDS),
                    emotion=request.meta["emotion"],
                    topic=request.meta["topic"],
                    topic_id=request.meta.get("topic_id", ""),
                    pov=request.meta["povs"][0],
                    provenance=prov,
                )
            ]
        opening = request.meta.get("opening")
        if not opening:
            return super().parse(request, completion, prov)
        cont = self.continuation(completion)
        return [
            Story(
                id=self.record_id(request, 0),
                text=opening + cont,
                emotion=request.meta["emotion"],
                topic=request.meta["topic"],
                topic_id=request.meta.get("topic_id", ""),
                pov=request.meta["povs"][0],
                prompt_prefix=opening,
                provenance=prov,
            )
        ]
