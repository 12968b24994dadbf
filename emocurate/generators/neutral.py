"""Emotionally neutral human/assistant conversations, the baseline used to denoise vectors.

Topics are practical subject areas (code, facts, how-to, work tasks), not the bundled emotional
premises: a count N takes the first N areas below, ``all`` takes every area, and a file gives
its own.
"""

from __future__ import annotations

from typing import Any

from emocurate.errors import ConfigError
from emocurate.generators.backends.base import ChatRequest
from emocurate.generators.common import TURNS_SCHEMA, Generator, make_custom_id
from emocurate.generators.dialogues import item_turns
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
        out: list[ChatRequest] = []
        k = self.n_per_request
        for topic in self.topics():
            done, chunk = 0, 0
            while done < self.cfg.per_topic:
                n = min(k, self.cfg.per_topic - done)
                cid = make_custom_id("nt", topic.id, str(chunk))
                out.append(
                    self.request(
                        cid,
                        {"premise": topic.premise, "n": n},
                        n,
                        {"topic": topic.premise, "topic_id": topic.id},
                    )
                )
                done += n
                chunk += 1
        return out

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
