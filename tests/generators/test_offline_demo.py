"""The offline demo: stories from the embedded 260K base model, batched, seeded, fast."""

from __future__ import annotations

import re
import time

import pytest

from emocurate.artifacts import GenerateManifest
from emocurate.configs import GenerateConfig
from emocurate.generators.backends.transformers_backend import TransformersBackend
from emocurate.generators.run import run_generation
from emocurate.io import read_records
from emocurate.records import Story


@pytest.fixture(scope="module")
def backend():
    return TransformersBackend("stories260K")


def cfg(**kw):
    base = dict(
        kind="stories",
        backend="transformers",
        model="stories260K",
        emotions="tinystories",
        topics="5",
        per_topic=2,
        seed=0,
        progress=False,
    )
    return GenerateConfig(**{**base, **kw})


def test_demo_makes_about_150_stories_quickly_and_deterministically(tmp_path, backend):
    t = time.monotonic()
    m = run_generation(cfg(), tmp_path / "a", backend=backend)
    elapsed = time.monotonic() - t
    assert m.planned_requests == m.completed_requests == 140
    assert m.records == 140 and m.failed_requests == 0
    assert elapsed < 30, f"demo generation took {elapsed:.1f}s"
    stories = read_records(tmp_path / "a", Story)
    assert GenerateManifest.read(tmp_path / "a") == m
    assert {s.pov for s in stories} == {"first", "third"}
    for s in stories:
        assert s.prompt_prefix and s.text.startswith(s.prompt_prefix)
        assert len(s.generated_text.split()) >= 8
        assert (
            s.provenance
            and s.provenance.backend == "transformers"
            and s.provenance.output_tokens > 0
        )
        assert s.provenance.prompt_hash
    # A fresh run (no cache) with the same seed writes the same stories.
    m2 = run_generation(cfg(), tmp_path / "b", backend=backend)
    again = read_records(tmp_path / "b", Story)
    assert m2.cached_requests == 0
    assert [(s.id, s.text) for s in again] == [(s.id, s.text) for s in stories]
    # A rerun into the same folder comes from the cache.
    m3 = run_generation(cfg(), tmp_path / "a", backend=backend)
    assert m3.cached_requests == 140 and m3.calls == 0
    # Another seed, other stories.
    run_generation(cfg(seed=1, emotions="happy", topics="1"), tmp_path / "c", backend=backend)
    other = read_records(tmp_path / "c", Story)
    first = {s.id: s.text for s in stories}
    assert all(first.get(s.id) != s.text for s in other)


SPLIT_WORD = re.compile(r"(?<![\w'])(?:I t|A nna|T om|S he|H e|L ily|W e)(?!\w)")


def test_continuations_join_without_splitting_words(tmp_path, backend):
    """The opening and the model's continuation are joined as the model decoded them:
    "I" + "t was" is "It was", never "I t was"."""
    run_generation(cfg(emotions="happy,sad", topics="10"), tmp_path / "s", backend=backend)
    stories = read_records(tmp_path / "s", Story)
    split = [s.text for s in stories if SPLIT_WORD.search(s.text)]
    assert not split, split[:3]
    for s in stories:
        gen = s.generated_text
        # the continuation is a clean suffix: either it starts a new word (space/punctuation)
        # or it finishes the opening's last word, never with a space pushed inside a word
        assert gen == s.text[len(s.prompt_prefix) :]


def test_base_model_neutral_records_name_no_emotion(tmp_path, backend):
    """A base model gets matter-of-fact openings; continuations naming an emotion are retried."""
    from emocurate.records import NeutralDialogue
    from emocurate.taxonomy import load_taxonomy
    from emocurate.validators.leakage import find_leaks

    m = run_generation(
        cfg(kind="neutral", topics="6", per_topic=2, max_tokens=40), tmp_path / "n", backend=backend
    )
    recs = read_records(tmp_path / "n", NeutralDialogue)
    assert m.planned_requests == 12
    assert len(recs) + m.failed_requests == 12 and len(recs) >= 10
    terms = [t for e in load_taxonomy().emotions for t in e.leak_terms]
    for r in recs:
        assert r.narrative and not r.turns and r.text == r.narrative
        assert not find_leaks(r.text, terms), r.text


def test_decode_loop_uses_the_current_cache_api(tmp_path):
    """No `past_key_values=` (removed in transformers 5.40): the loop passes its cache as `cache`,
    and the output is the same as decoding without a cache."""
    import asyncio
    import functools
    import inspect
    import warnings

    import torch

    from emocurate.generators.backends.base import ChatRequest, Message

    backend = TransformersBackend("stories260K")
    model = backend.lm.model
    seen: list[set[str]] = []
    original = model.forward

    @functools.wraps(original)  # keeps the model's signature, which the backend inspects
    def spy(*args, **kwargs):
        seen.append(set(kwargs))
        return original(*args, **kwargs)

    model.forward = spy  # type: ignore[method-assign]
    request = ChatRequest(
        custom_id="c1",
        model="stories260K",
        messages=[Message(role="user", content="Once upon a time, Tom")],
        max_tokens=12,
        temperature=0.0,
        seed=1,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done = asyncio.run(backend.complete(request))
    assert seen and all("past_key_values" not in k for k in seen), seen
    assert "cache" in inspect.signature(original).parameters
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    # greedy decoding with the cache equals greedy decoding by full recomputation
    _, ids = backend.render(request)
    x = torch.tensor([ids])
    with torch.inference_mode():
        for _ in range(done.output_tokens):
            x = torch.cat([x, original(input_ids=x).logits[:, -1:].argmax(-1)], dim=1)
    assert backend._continuation(ids, x[0, len(ids) :].tolist()) == done.text


def test_transformers_is_bounded_below_the_next_major():
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    [req] = [
        Requirement(r) for r in meta["project"]["dependencies"] if r.startswith("transformers")
    ]
    assert Version("5.24.0") in req.specifier
    assert Version("6.0.0") not in req.specifier and Version("6.0.0.dev0") not in req.specifier


def test_neutral_keeps_the_sentences_before_an_emotion_word(backend):
    """A continuation that names an emotion late keeps its neutral start; one that names it at
    once is retried (malformed)."""
    from emocurate.generators.backends.base import Completion
    from emocurate.generators.common import ParseError
    from emocurate.generators.run import make_generator

    gen = make_generator(cfg(kind="neutral", topics="1", per_topic=1), backend)
    (req,) = gen.plan()
    late = " The cups were on the table and the spoons were in the drawer. Then Tom was happy."
    (rec,) = gen.parse(req, Completion(text=late))
    assert rec.narrative.endswith("in the drawer.") and "happy" not in rec.narrative
    with pytest.raises(ParseError, match="names an emotion"):
        gen.parse(req, Completion(text=" Tom was sad. The cups were on the table and it was late."))
