"""Synthetic labelled stories for the vector tests (templated, so the label is in every sentence)."""

from __future__ import annotations

import random

from emocurate.records import Story

CUES: dict[str, list[str]] = {
    "happy": [
        "was very happy",
        "smiled a big smile",
        "felt happy and glad",
        "laughed and was happy",
    ],
    "sad": ["was very sad", "cried and cried", "felt sad and alone", "had tears in her eyes"],
    "scared": [
        "was very scared",
        "was afraid of the dark",
        "felt scared and shook",
        "hid because she was scared",
    ],
    "angry": [
        "was very angry",
        "shouted and was mad",
        "felt angry at the mess",
        "stomped her feet, angry",
    ],
}
NAMES = ["Lily", "Tom", "Sue", "Ben", "Mia", "Max"]
PLACES = ["in the park", "at home", "by the lake", "in the garden", "at school", "in the woods"]
THINGS = ["a red ball", "a little dog", "a big box", "a toy car", "a blue kite", "a cake"]


def story_text(emotion: str, rng: random.Random, sentences: int = 5) -> str:
    """A short templated story whose every sentence carries the emotion."""
    name = rng.choice(NAMES)
    parts = [f"Once upon a time, {name} was {rng.choice(PLACES)}."]
    for _ in range(sentences):
        parts.append(f"{name} saw {rng.choice(THINGS)} and {rng.choice(CUES[emotion])}.")
    return " ".join(parts)


def make_stories(
    n_per: int = 12, emotions: list[str] | None = None, seed: int = 0, sentences: int = 5
) -> list[Story]:
    """``n_per`` stories per emotion."""
    rng = random.Random(seed)
    out = []
    for e in emotions or list(CUES):
        for i in range(n_per):
            out.append(
                Story(id=f"{e}-{i}", text=story_text(e, rng, sentences), emotion=e, topic="play")
            )
    return out
