"""The real Anthropic and OpenAI SDKs against fake servers on 127.0.0.1: faults, accounting."""

from __future__ import annotations

import asyncio
import socket

import pytest

from emocurate.configs import GenerateConfig
from emocurate.errors import BackendError
from emocurate.generators.backends import make_backend
from emocurate.generators.backends.base import CallError, ChatRequest, Message
from emocurate.generators.run import run_generation
from emocurate.io import read_records
from emocurate.records import Story
from tests.fakes.llm_servers import FAULT_KINDS, Faults, fake_anthropic_server
from tests.generators.helpers import SERVERS, hosted_cfg


def gen_cfg(flavor: str, base_url: str, **kw) -> GenerateConfig:
    return hosted_cfg(
        flavor, base_url, **{"concurrency": 8, "timeout_s": 0.6, "max_retries": 6, **kw}
    )


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_clean_run_structured_output_usage_and_prompt_cache(tmp_path, flavor):
    ctx, _ = SERVERS[flavor]
    with ctx(latency_s=0.005, limits={"rpm": 5000, "input_tpm": 2_000_000}) as srv:
        m = run_generation(gen_cfg(flavor, srv.base_url), tmp_path)
        assert srv.stats.calls == m.planned_requests == m.completed_requests == 12
        assert m.records == 48 and m.failures == []
        assert m.tokens.cache_read > 0  # shared system prompt read from the prompt cache
        if flavor == "anthropic":
            assert m.tokens.cache_write > 0
        assert m.usd.spent_this_run > 0 and m.rate_limits["rpm"] == pytest.approx(4750)
    stories = read_records(tmp_path, Story)
    assert len({s.id for s in stories}) == 48
    p = stories[0].provenance
    assert p is not None and p.request_id and p.input_tokens > 0 and p.cost_usd > 0


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
@pytest.mark.parametrize("fault", FAULT_KINDS)
def test_each_fault_is_retried_to_success(tmp_path, flavor, fault):
    ctx, _ = SERVERS[flavor]
    faults = Faults(**{fault: 0.4}, seed=1, retry_after_s=0.05, hang_s=1.0)
    with ctx(faults=faults) as srv:
        m = run_generation(
            gen_cfg(flavor, srv.base_url, emotions="happy", per_topic=12, max_retries=10), tmp_path
        )
        assert srv.stats.faults[fault] > 0
        assert m.completed_requests == m.planned_requests == 6, m.failures
        assert srv.stats.calls == 6 + srv.stats.faults[fault]
        assert m.retries >= srv.stats.faults[fault]


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_fault_run_accounting(tmp_path, flavor):
    """20% transport failures + 5% malformed/truncated: every request ends as records or a reason."""
    ctx, _ = SERVERS[flavor]
    faults = Faults(
        rate_limit=0.04,
        overloaded=0.04,
        unavailable=0.03,
        server_error=0.03,
        reset=0.03,
        timeout=0.03,
        malformed=0.025,
        truncated=0.025,
        seed=5,
        retry_after_s=0.02,
        hang_s=1.0,
    )
    with ctx(faults=faults, latency_s=0.002) as srv:
        m = run_generation(
            gen_cfg(flavor, srv.base_url, topics="4", per_topic=12, max_retries=2, concurrency=16),
            tmp_path,
        )
    planned = m.planned_requests
    assert planned == 36
    assert m.completed_requests + m.failed_requests + m.skipped_requests == planned
    assert len(m.failures) == m.failed_requests + m.skipped_requests
    assert all(f.reason for f in m.failures)
    assert m.records == 4 * m.completed_requests
    stories = read_records(tmp_path, Story)
    assert (
        len(stories) == m.records == len({s.id for s in stories}) == len({s.text for s in stories})
    )
    assert sum(srv.stats.faults.values()) > 0 and m.retries > 0
    # every successful server answer that was well-formed became exactly one completed request
    assert srv.stats.ok >= m.completed_requests


def test_persistent_failure_is_a_reasoned_failure(tmp_path):
    with fake_anthropic_server(faults=Faults(server_error=1.0)) as srv:
        m = run_generation(
            gen_cfg(
                "anthropic", srv.base_url, emotions="happy", topics="1", per_topic=4, max_retries=2
            ),
            tmp_path,
        )
    assert m.completed_requests == 0 and m.failed_requests == 1
    assert "after 3 attempt(s)" in m.failures[0].reason and "500" in m.failures[0].reason
    assert read_records(tmp_path, Story) == []


def test_backend_classifies_sdk_errors_without_sdk_retries():
    with fake_anthropic_server(faults=Faults(rate_limit=1.0, retry_after_s=7)) as srv:
        b = make_backend("anthropic", "claude-sonnet-4-6", base_url=srv.base_url)
        req = ChatRequest(
            custom_id="x", model="claude-sonnet-4-6", messages=[Message(role="user", content="hi")]
        )
        with pytest.raises(CallError) as info:
            asyncio.run(b.complete(req))
        assert info.value.kind == "rate_limited" and info.value.retry_after == 7
        assert srv.stats.calls == 1  # the SDK itself did not retry


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_base_url_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(BackendError, match=r"cannot reach http://127\.0\.0\.1:\d+"):
        run_generation(
            gen_cfg("anthropic", url, emotions="happy", topics="1", per_topic=4), tmp_path
        )


def test_missing_key_is_one_line(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(BackendError, match="no API key .*ANTHROPIC_API_KEY"):
        make_backend("anthropic", "claude-sonnet-4-6")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        make_backend("openai", "gpt-4o")
    assert make_backend("openai", "qwen", base_url="http://127.0.0.1:9/v1").name == "openai"
