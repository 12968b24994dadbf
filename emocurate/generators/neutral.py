"""Emotionally neutral human/assistant conversations, the baseline used to denoise vectors.

Topics are practical subject areas (code, facts, how-to, work tasks), not the bundled emotional
premises: a count N takes the first N areas below, ``all`` takes every area, and a file gives
its own.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from emocurate.errors import ConfigError
from emocurate.generators.backends.base import ChatRequest
from emocurate.generators.common import TURNS_SCHEMA, Generator
from emocurate.generators.dialogues import item_turns
from emocurate.generators.parse import ParseError
from emocurate.generators.stories import BOYS, GIRLS
from emocurate.records import NeutralDialogue, Provenance
from emocurate.taxonomy import Topic, resolve_topics

NEUTRAL_AREAS = (
    "Python programming: list and dictionary operations",
    "SQL queries: joins, grouping and filtering",
    "unit conversion and arithmetic",
    "world geography facts",
    "how to configure a software tool from its documentation",
    "spreadsheet formulas",
    "shell commands for files and folders",
    "scheduling a meeting across time zones",
    "formatting a reference list",
    "basic chemistry definitions",
    "summarising a neutral technical paragraph",
    "git commands for branches and history",
    "JavaScript string and array methods",
    "cooking measurements and oven temperatures",
    "regular expressions",
    "historical dates and events",
    "writing a short product description from specifications",
    "statistics: mean, median and standard deviation",
    "office logistics: booking rooms and ordering supplies",
    "HTTP status codes and REST API design",
)


# Base models (no chat template) continue matter-of-fact openings in their own register; what
# they write is kept only if it names no emotion of the taxonomy (see ``NeutralGenerator.parse``).
NEUTRAL_OPENINGS = (
    "{name} put three cups on the table. One cup was red, one was blue and one was green.",
    "{name} and {poss} dad went to the shop to buy bread, milk and eggs.",
    "{name} had a box of blocks. {Pron} counted the blocks. There were ten blocks in the box.",
    "In the morning, {name} walked to school. The school was next to the park.",
    "{name} drew a house with a door and two windows. Then {pron} drew a tree next to it.",
    "The bus stopped at the corner. {name} got on the bus with {poss} mom.",
    "{name} washed the plates and put them on the shelf. Then {pron} dried the cups.",
    "Every day, {name} fed the fish. The fish lived in a small tank by the window.",
    "{name} made a list: apples, bread, soap and a new pencil.",
    "{name} sorted the socks into pairs. There were white socks and gray socks.",
    "The train went past the farm. {name} looked at the cows and the barn.",
    "{name} planted seeds in a pot. {Pron} gave them water and put the pot in the sun.",
    "{name} read a book about boats. The book said that boats float on water.",
    "{name} folded the towels and put them in the closet.",
    "It was Monday. {name} put on {poss} coat and took {poss} bag.",
    "{name} built a tower with six blocks. Then {pron} built a bridge with four more.",
    "{name} and {poss} friend walked to the library. They took out two books.",
    "The cat sat on the mat. {name} gave the cat some water in a bowl.",
    "{name} painted the fence white. It took all morning to paint the fence.",
    "{name} swept the floor of the kitchen and put the broom in the corner.",
)


NEUTRAL_MIN_WORDS = 8
"""Fewest words of emotion-free continuation a neutral narrative keeps."""


class NeutralGenerator(Generator):
    """Matter-of-fact conversations about practical tasks."""

    kind = "neutral"
    item_props = {"turns": TURNS_SCHEMA}
    text_fields = {"conversation": "alternating lines starting 'Human:' and 'Assistant:'"}

    def topics(self) -> list[Topic]:
        """Neutral subject areas (count or ``all``) or the topics of a file."""
        spec = self.cfg.topics.strip()
        areas = [
            Topic(id=f"n{i + 1:02d}", premise=a, stakes="none") for i, a in enumerate(NEUTRAL_AREAS)
        ]
        if spec == "all":
            return areas
        if spec.isdigit():
            n = int(spec)
            if not 1 <= n <= len(areas):
                raise ConfigError(
                    f"neutral topics: asked for {n}, choose 1 to {len(areas)} or a file"
                )
            return areas[:n]
        return resolve_topics(spec)

    def plan(self) -> list[ChatRequest]:
        """One request per subject area x chunk of ``per_request`` conversations."""
        if self.style == "opening":
            return self._plan_openings()
        cells = self.cells("nt", (((), topic) for topic in self.topics()))
        if self.style == "simple":
            return [
                self.simple_request(
                    cell.custom_id,
                    {"premise": cell.topic.premise.strip().rstrip("."), "words": 100},
                    cell.meta(),
                )
                for cell in cells
            ]
        return [
            self.request(
                cell.custom_id, {"premise": cell.topic.premise, "n": cell.n}, cell.n, cell.meta()
            )
            for cell in cells
        ]

    def _plan_openings(self) -> list[ChatRequest]:
        """Base models: one neutral opening per record for the model to continue."""
        spec = self.cfg.topics.strip()
        n_open = len(NEUTRAL_OPENINGS) if spec == "all" or not spec.isdigit() else int(spec)
        if not 1 <= n_open <= len(NEUTRAL_OPENINGS):
            raise ConfigError(
                f"neutral topics: asked for {n_open}, choose 1 to {len(NEUTRAL_OPENINGS)} for a base model"
            )
        # the opening template stands in for the premise
        openings = [
            Topic(id=f"open{t + 1:02d}", premise=template, stakes="none")
            for t, template in enumerate(NEUTRAL_OPENINGS[:n_open])
        ]
        out: list[ChatRequest] = []
        for cell in self.cells("nt", (((), topic) for topic in openings)):
            rng = self.rng(cell.custom_id)
            girl = rng.random() < 0.5
            opening = cell.topic.premise.format(
                name=rng.choice(GIRLS if girl else BOYS),
                Pron="She" if girl else "He",
                pron="she" if girl else "he",
                poss="her" if girl else "his",
            )
            meta = {"topic": "neutral opening", "topic_id": cell.topic.id}
            out.append(self.opening_request(cell.custom_id, opening, "neutral/opening-v1", meta))
        return out

    @cached_property
    def _emotion_terms(self) -> tuple[str, ...]:
        return tuple(sorted({t for e in self.tax.emotions for t in e.leak_terms}))

    def parse(
        self, request: ChatRequest, completion: Any, prov: Provenance | None = None
    ) -> list[Any]:
        """Structured answers hold conversations; a continuation or a simple-style answer is one
        narrative.

        A narrative that names any emotion of the taxonomy is not neutral: it is refused as
        malformed, so the engine retries it with a moved seed.
        """
        simple = bool(request.meta.get("simple"))
        opening = str(request.meta.get("opening") or "")
        if not opening and not simple:
            return super().parse(request, completion, prov)
        from emocurate.generators.text import answer_text
        from emocurate.validators.leakage import find_leaks

        if simple:
            cont = answer_text(completion.text, min_words=1)
        else:
            cont = self.continuation(completion, min_words=1)
        leaks = find_leaks(cont, self._emotion_terms)
        if leaks:
            # Keep the sentences before the first one that names an emotion: what is left is
            # still the model's own neutral text (TinyStories-style models name feelings often).
            cut = max(cont.rfind(c, 0, leaks[0].start) for c in ".!?")
            cont = cont[: cut + 1] if cut >= 0 else ""
        if len(cont.split()) < NEUTRAL_MIN_WORDS:
            why = f"names an emotion ('{leaks[0].matched}')" if leaks else "is too short"
            raise ParseError(f"continuation {why} before {NEUTRAL_MIN_WORDS} neutral words")
        return [
            NeutralDialogue(
                id=self.record_id(request, 0),
                narrative=opening + cont,
                topic=request.meta["topic"],
                provenance=prov,
            )
        ]

    def build(
        self, request: ChatRequest, item: dict[str, Any], index: int, prov: Provenance | None
    ) -> NeutralDialogue:
        """A NeutralDialogue from structured turns or a ``conversation`` text field."""
        return NeutralDialogue(
            id=self.record_id(request, index),
            turns=item_turns(item),
            topic=request.meta["topic"],
            provenance=prov,
        )
