"""The engine with the in-process fake backend: order, cache, retries, malformed, budget, limits."""

from __future__ import annotations

import json
import time

import pytest

from emocurate.errors import BudgetExceeded
from emocurate.generators.backends.base import CallError, ChatRequest, Completion, Message
from emocurate.generators.backends.fake import FakeBackend
from emocurate.generators.cache import ResponseCache
from emocurate.generators.engine import Engine, EngineConfig, MalformedOutput
from emocurate.generators.pricing import Price


def reqs(n: int, **kw) -> list[ChatRequest]:
    return [
        ChatRequest(
            custom_id=f"r{i}",
            model="fake-model",
            messages=[Message(role="user", content=f"request number {i}")],
            **kw,
        )
        for i in range(n)
    ]


FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


def test_results_in_order_and_cache_makes_rerun_free(tmp_path):
    backend = FakeBackend(latency_s=0.001)
    with ResponseCache(tmp_path / "c.jsonl") as cache:
        out = Engine(backend, EngineConfig(concurrency=4), cache, progress=False).run_sync(reqs(30))
    assert [r.custom_id for r in out] == [f"r{i}" for i in range(30)]
    assert all(r.ok and not r.cached for r in out) and backend.calls == 30
    again = FakeBackend()
    with ResponseCache(tmp_path / "c.jsonl") as cache:
        out2 = Engine(again, EngineConfig(), cache, progress=False).run_sync(reqs(30))
    assert again.calls == 0 and all(r.cached for r in out2)
    assert [r.completion for r in out2] == [r.completion for r in out]


def test_cache_key_covers_sampling_parameters(tmp_path):
    with ResponseCache(tmp_path / "c.jsonl") as cache:
        Engine(FakeBackend(), EngineConfig(), cache, progress=False).run_sync(reqs(3))
        b = FakeBackend()
        Engine(b, EngineConfig(), cache, progress=False).run_sync(reqs(3, temperature=0.5))
        assert b.calls == 3


def test_torn_cache_line_is_skipped_and_next_append_is_clean(tmp_path):
    path = tmp_path / "c.jsonl"
    with ResponseCache(path) as cache:
        Engine(FakeBackend(), EngineConfig(), cache, progress=False).run_sync(reqs(2))
    with path.open("ab") as fh:
        fh.write(b'{"key": "abc", "completion": {"te')  # a write cut by kill -9
    with ResponseCache(path) as cache:
        assert len(cache) == 2 and cache.skipped_lines == 1
        Engine(FakeBackend(), EngineConfig(), cache, progress=False).run_sync(reqs(4))
    lines = [json.loads(x) for x in path.read_text().splitlines()[-2:]]
    assert len(lines) == 2
    with ResponseCache(path) as cache:
        assert len(cache) == 4


def test_retries_transient_errors_and_reports_exhaustion():
    backend = FakeBackend(fail_rate=0.5, seed=3)
    out = Engine(backend, EngineConfig(max_retries=8, **FAST), progress=False).run_sync(reqs(40))
    assert all(r.ok for r in out)
    assert backend.calls > 40 and max(r.attempts for r in out) > 1
    always = FakeBackend(fail_rate=1.0)
    out = Engine(always, EngineConfig(max_retries=2, **FAST), progress=False).run_sync(reqs(3))
    assert all(not r.ok for r in out) and always.calls == 9
    assert "after 3 attempt(s): overloaded" in (out[0].error or "")


def test_malformed_answers_are_retried_never_cached(tmp_path):
    seen: dict[str, int] = {}

    def check(req: ChatRequest, c: Completion) -> None:
        seen[req.custom_id] = seen.get(req.custom_id, 0) + 1
        if seen[req.custom_id] == 1:
            raise MalformedOutput("first answer is garbage")

    with ResponseCache(tmp_path / "c.jsonl") as cache:
        eng = Engine(FakeBackend(), EngineConfig(), cache, progress=False)
        out = eng.run_sync(reqs(5), check=check)
        assert all(r.ok and r.attempts == 2 for r in out)
        assert eng.stats.malformed == 5 and len(cache) == 5


def test_malformed_retry_moves_the_seed_and_caches_under_the_original_key(tmp_path):
    """A seeded sampler would repeat the same bad answer; retries must not send the same seed."""

    class Seeded(FakeBackend):
        sent: list[int | None] = []

        async def complete(self, request):
            self.sent.append(request.seed)
            c = await super().complete(request)
            return c.model_copy(update={"text": "bad" if request.seed == 7 else "good"})

    def check(req: ChatRequest, c: Completion) -> None:
        if c.text == "bad":
            raise MalformedOutput("seeded garbage")

    backend = Seeded()
    with ResponseCache(tmp_path / "c.jsonl") as cache:
        out = Engine(backend, EngineConfig(), cache, progress=False).run_sync(
            reqs(1, seed=7), check=check
        )
    assert out[0].ok and out[0].attempts == 2
    assert backend.sent[0] == 7 and backend.sent[1] != 7
    again = Seeded()
    again.sent = []
    with ResponseCache(tmp_path / "c.jsonl") as cache:
        out2 = Engine(again, EngineConfig(), cache, progress=False).run_sync(
            reqs(1, seed=7), check=check
        )
    assert out2[0].cached and again.sent == []


def test_non_retryable_error_fails_only_that_request():
    class Picky(FakeBackend):
        async def complete(self, request):
            if request.custom_id == "r1":
                raise CallError("400 rejected: bad", kind="bad_request")
            return await super().complete(request)

    out = Engine(Picky(), EngineConfig(**FAST), progress=False).run_sync(reqs(3))
    assert [r.ok for r in out] == [True, False, True] and out[1].attempts == 1


def test_budget_stops_cleanly_and_floor_is_checked():
    price = {"fake-model": Price(input=1000.0, output=1000.0)}  # $0.001 per token
    backend = FakeBackend()
    one = Engine(backend, EngineConfig(prices=price), progress=False).estimate(
        reqs(1, max_tokens=50)
    )
    eng = Engine(
        backend, EngineConfig(prices=price, budget_usd=one * 3.5, concurrency=1), progress=False
    )
    out = eng.run_sync(reqs(10, max_tokens=50))
    done = [r for r in out if r.ok]
    assert 3 <= len(done) < 10 and eng.stats.budget_reached
    assert eng.stats.usd_spent <= one * 3.5
    assert all(r.skipped and "budget" in (r.error or "") for r in out if not r.ok)
    with pytest.raises(BudgetExceeded, match="below the estimated cost of one request"):
        Engine(
            FakeBackend(), EngineConfig(prices=price, budget_usd=one / 10), progress=False
        ).run_sync(reqs(2, max_tokens=50))


def test_rpm_bucket_paces_requests():
    backend = FakeBackend()
    t = time.monotonic()
    Engine(backend, EngineConfig(rpm=6000, concurrency=64), progress=False).run_sync(reqs(250))
    elapsed = time.monotonic() - t
    # 100/s with a one-second burst: 250 requests need at least ~1.5 s.
    assert 1.3 < elapsed < 4.0


def test_header_limits_seed_unset_buckets():
    class Announcing(FakeBackend):
        async def complete(self, request):
            c = await super().complete(request)
            return c.model_copy(update={"rate_limits": {"rpm": 1000.0, "output_tpm": 5000.0}})

    eng = Engine(Announcing(), EngineConfig(output_tpm=999_999), progress=False)
    eng.run_sync(reqs(2))
    assert eng.stats.rate_limits["rpm"] == pytest.approx(950.0)
    assert eng.stats.rate_limits["output_tpm"] == 999_999  # the user's setting wins
