"""Fixtures for validator tests: synthetic records and stage folders (no research data)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from emocurate.io import write_records
from emocurate.records import Dialogue, Provenance, RegulationPair, Story, Turn, stable_id

torch.set_num_threads(1)

GOOD = (
    "Mia held the old kite by its broken string and looked at the grey sky for a long time. "
    "Her brother had promised to fix it before he moved to the city, but the box by the door "
    "was already taped shut. She sat on the step and did not go inside when Mom called her. "
    "Later she folded the kite very carefully and put it under her bed."
)


def make_story(
    text: str = GOOD,
    emotion: str = "sad",
    *,
    prefix: str = "",
    stop: str = "",
    rid: str | None = None,
    topic: str = "moving away",
) -> Story:
    """One Story record (optionally with a prompt opening and a stop reason)."""
    prov = None
    if stop:
        prov = Provenance(
            backend="fake", model="m", prompt_id="p", prompt_hash="h", params={"stop_reason": stop}
        )
    return Story(
        id=rid or stable_id(text, emotion),
        text=prefix + text,
        emotion=emotion,
        topic=topic,
        prompt_prefix=prefix,
        provenance=prov,
    )


def make_dialogue(
    turns: list[tuple[str, str]],
    human: str = "worried",
    assistant: str = "calm",
    rid: str | None = None,
) -> Dialogue:
    """One Dialogue record from ``(speaker, text)`` pairs."""
    return Dialogue(
        id=rid or stable_id(*(t for _, t in turns)),
        turns=[Turn(speaker=s, text=t) for s, t in turns],  # type: ignore[arg-type]
        human_emotion=human,
        assistant_emotion=assistant,
    )


def make_regulation(
    setup: str, healthy: str, unhealthy: str, emotion: str = "angry"
) -> RegulationPair:
    """One RegulationPair record."""
    return RegulationPair(
        id=stable_id(setup, healthy),
        setup=setup,
        healthy=healthy,
        unhealthy=unhealthy,
        emotion=emotion,
    )


def write_stage(folder: Path, records: list, name: str = "part-00000") -> Path:  # type: ignore[type-arg]
    """Write records as a stage folder and return it."""
    write_records(folder, records, name=name)
    return folder


@pytest.fixture
def rng() -> random.Random:
    """A seeded RNG."""
    return random.Random(0)
