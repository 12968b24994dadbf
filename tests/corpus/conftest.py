"""Fixtures for corpus tests: the embedded model and small VectorSets on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emocurate.vectors.capture import token_activations
from emocurate.vectors.models import LoadedModel, default_layer, load_model
from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

torch.set_num_threads(1)

NAMES = ["happy", "sad", "afraid", "angry", "calm", "desperate", "relieved", "surprised"]
NEUTRAL = [
    "Once upon a time there was a boy named Tim. He had a red ball. He went to the park.",
    "The sun was up. The bird sat on a tree. A girl walked to the shop with her mom.",
    "There was a big box in the room. It was brown. The dog sat next to the box.",
]


@pytest.fixture(scope="session")
def lm() -> LoadedModel:
    return load_model("stories260K")


def make_vectorset(
    lm: LoadedModel, names: list[str] = NAMES, seed: int = 0, kind: str = "emotion"
) -> VectorSet:
    """Random directions at the default layer with a neutral reference from simple stories."""
    gen = torch.Generator().manual_seed(seed)
    layer = default_layer(lm.n_layers)
    meta = VectorSetMeta(
        names=list(names),
        layers=[layer],
        default_layer=layer,
        model_id="stories260K",
        hidden_size=lm.hidden_size,
        n_model_layers=lm.n_layers,
        kind=kind,
    )
    vs = VectorSet({layer: torch.randn(len(names), lm.hidden_size, generator=gen)}, meta)
    acts = torch.cat([a[1:] for _, _, a in token_activations(lm, NEUTRAL, layer)])
    vs.set_reference(layer, acts)
    return vs


@pytest.fixture(scope="session")
def vs_dir(lm: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vector set calibrated on the neutral texts (``calibration.json``)."""
    from emocurate.configs import ScoreConfig
    from emocurate.corpus.calibrate import calibrate

    d = tmp_path_factory.mktemp("vectors")
    make_vectorset(lm).save(d)
    ref = write_neutral(d.parent / "neutral_ref.jsonl")
    calibrate(d, [ref], ScoreConfig(progress=False), lm=lm)
    return d


def write_neutral(path: Path) -> Path:
    """The neutral texts as a JSONL reference corpus."""
    import json

    with path.open("w") as fh:
        for i, t in enumerate(NEUTRAL * 4):
            fh.write(json.dumps({"id": f"n{i}", "text": t}) + "\n")
    return path


STORIES = [
    "Lily was playing in the garden. Suddenly a big dog ran at her and barked. She was very scared "
    "and she cried. Her mom came and hugged her. Lily felt safe and calm again.",
    "Tom had a new toy car. He was so happy. He played with it all day and smiled.",
    "Ben lost his toy. He looked and looked but he could not find it. He was sad and angry.",
    "Human: I am so scared, my dog is lost!\n\nAssistant: I am sorry. Let us think calmly about "
    "where he might be.\n\nHuman: He ran to the park.\n\nAssistant: Good, let us look there first.",
    "The cat sat on the mat. The sun was warm. It was a quiet day.",
]


def write_jsonl(path: Path, n: int, extra_bad: bool = False) -> Path:
    import json

    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"id": f"doc{i}", "text": f"{STORIES[i % len(STORIES)]} ({i})"}) + "\n"
            )
        if extra_bad:
            fh.write("{broken\n")
            fh.write(json.dumps({"id": "x", "text": 5}) + "\n")
    return path
