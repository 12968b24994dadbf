"""The offline demo: stories from the embedded 260K base model, batched, seeded, fast."""

from __future__ import annotations

import time

import pytest

from emocurate.generators.backends.transformers_backend import TransformersBackend
from emocurate.generators.run import GenerateConfig, run_generation
from emocurate.io import read_manifest, read_records
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
    assert m["planned_requests"] == m["completed_requests"] == 140
    assert m["records"] == 140 and m["failed_requests"] == 0
    assert elapsed < 30, f"demo generation took {elapsed:.1f}s"
    stories = read_records(tmp_path / "a", Story)
    assert read_manifest(tmp_path / "a")["records"] == 140
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
    assert m2["cached_requests"] == 0
    assert [(s.id, s.text) for s in again] == [(s.id, s.text) for s in stories]
    # A rerun into the same folder comes from the cache.
    m3 = run_generation(cfg(), tmp_path / "a", backend=backend)
    assert m3["cached_requests"] == 140 and m3["calls"] == 0
    # Another seed, other stories.
    run_generation(cfg(seed=1, emotions="happy", topics="1"), tmp_path / "c", backend=backend)
    other = read_records(tmp_path / "c", Story)
    first = {s.id: s.text for s in stories}
    assert all(first.get(s.id) != s.text for s in other)
