"""The generate manifest is the typed ``artifacts.GenerateManifest``: what ``run_generation``
writes validates against it with unknown keys refused, round-trips byte for byte, and is the
manifest the call returns."""

from __future__ import annotations

import json

import pytest

from emocurate.artifacts import GenerateManifest
from emocurate.configs import GenerateConfig
from emocurate.errors import InputError
from emocurate.generators.backends.fake import FakeBackend
from emocurate.generators.run import run_generation
from emocurate.io import MANIFEST
from tests.fakes.llm_servers import Faults, fake_anthropic_server
from tests.generators.helpers import hosted_cfg


def small_cfg(**kw: object) -> GenerateConfig:
    base: dict[str, object] = dict(
        kind="stories",
        backend="fake",
        model="fake-model",
        emotions="happy,afraid",
        topics="2",
        per_topic=4,
        per_request=2,
        progress=False,
    )
    return GenerateConfig.model_validate({**base, **kw})


def check_written(out, returned: GenerateManifest) -> dict:
    """The file on disk is a GenerateManifest (extra keys refused), it is what the run returned,
    and saving the parsed model writes the same bytes."""
    text = (out / MANIFEST).read_text("utf-8")
    raw = json.loads(text)
    m = GenerateManifest.parse(raw, where="test")
    assert m == returned
    with pytest.raises(InputError, match="surprise"):
        GenerateManifest.parse({**raw, "surprise": 1}, where="test")
    with pytest.raises(InputError, match="usd"):
        GenerateManifest.parse({**raw, "usd": {**raw["usd"], "surprise": 1}}, where="test")
    again = out / "again"
    m.save(again)
    assert (again / MANIFEST).read_text("utf-8") == text
    return raw


def test_written_manifest_is_the_typed_model_and_round_trips(tmp_path):
    out = tmp_path / "o"
    m = run_generation(
        small_cfg(max_retries=0), out, backend=FakeBackend(malformed_rate=0.3, seed=3)
    )
    raw = check_written(out, m)
    # the keys a run writes, in the order it writes them (dry-run-only keys and an absent
    # batch run left out)
    assert list(raw) == [
        "stage", "emocurate_version", "created", "kind", "backend", "model", "seed",
        "prompt_id", "prompt_hash", "prompts", "prompt_style", "prompt_style_reason", "config",
        "planned_requests", "planned_records", "completed_requests", "cached_requests",
        "failed_requests", "skipped_requests", "failures", "refill_requests",
        "partial_requests", "missing_records", "partial", "records", "kept_records", "calls",
        "retries", "malformed_answers", "error_counts", "tokens", "usd", "budget_usd",
        "budget_is_total", "budget_reached", "interrupted", "rate_limits", "time_s",
        "cache_file",
    ]  # fmt: skip
    assert m.failures and all(f.custom_id and f.reason for f in m.failures)


def test_failure_reasons_and_base_url_credentials_are_redacted(tmp_path):
    with fake_anthropic_server(faults=Faults(server_error=1.0)) as srv:
        url = srv.base_url.replace("http://", "http://user:hunter2@")
        cfg = hosted_cfg("anthropic", url, emotions="happy", topics="1", per_topic=4, max_retries=0)
        m = run_generation(cfg, tmp_path)
    assert m.failed_requests == 1
    text = (tmp_path / MANIFEST).read_text("utf-8")
    assert "hunter2" not in text and "***" in text
    check_written(tmp_path, GenerateManifest.parse(json.loads(text)))
