"""``--batch`` with the real Anthropic and OpenAI SDKs against the fake batch endpoints:
end to end, partial failure (only errored/expired/malformed items resubmitted), kill -9 after
submit (the rerun resumes the same batch), budget refusal and batch pricing."""

from __future__ import annotations

import json
import signal
import time

import pytest

from emocurate.artifacts import BatchRun
from emocurate.configs import GenerateConfig
from emocurate.errors import BudgetExceeded, ConfigError
from emocurate.generators.backends.base import Completion
from emocurate.generators.pricing import find_price
from emocurate.generators.run import plan_requests, run_generation
from emocurate.io import read_records
from emocurate.records import Story
from tests.fakes.llm_servers import BatchFaults, fake_anthropic_server
from tests.generators.helpers import SERVERS, comparable, hosted_cfg, start_generation


def batch_cfg(flavor: str, base_url: str, **kw) -> GenerateConfig:
    return hosted_cfg(flavor, base_url, **{"batch": True, "batch_poll_s": 0.01, **kw})


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_batch_end_to_end_structured_output_provenance_and_batch_price(tmp_path, flavor):
    ctx, model = SERVERS[flavor]
    with ctx(batch_faults=BatchFaults(polls=2)) as srv:
        m = run_generation(batch_cfg(flavor, srv.base_url), tmp_path)
        assert srv.stats.calls == 0  # nothing went through the synchronous endpoint
        assert (
            srv.stats.batches_created == 1
            and m.batches is not None
            and len(m.batches.submitted) == 1
        )
        (batch,) = srv.batches.values()
        bodies = [b for _, b, _ in batch.items]
    assert m.planned_requests == m.completed_requests == 12 and m.failures == []
    assert m.records == 48 and m.usd.batch_pricing
    for body in bodies:  # structured output inside every batch item, as in normal mode
        if flavor == "anthropic":
            assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
            assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        else:
            assert body["response_format"]["type"] == "json_schema"
            assert body["response_format"]["json_schema"]["strict"] is True
    # cost at the batch price: half the list price of exactly the tokens billed
    t = m.tokens
    price, known = find_price(flavor, model)
    usage = Completion(
        input_tokens=t.input,
        output_tokens=t.output,
        cache_read_tokens=t.cache_read,
        cache_write_tokens=t.cache_write,
    )
    assert known and t.input > 0 and t.output > 0
    assert m.usd.spent_this_run == pytest.approx(price.cost(usage) * 0.5, rel=1e-4)
    stories = read_records(tmp_path, Story)
    assert len({s.id for s in stories}) == 48
    assert sum(s.provenance.cost_usd for s in stories) == pytest.approx(
        m.usd.spent_this_run, rel=1e-3
    )
    for s in stories:
        p = s.provenance
        assert p.request_id == f"{batch.id}:{p.params['custom_id']}" and not p.cache_hit
    state = (tmp_path / "cache" / "batches.json").read_text()
    assert "test-key" not in state and json.loads(state)["batches"][0]["collected"] is True
    # a rerun (same endpoint) is answered from the response cache: zero new submissions
    with ctx(batch_faults=BatchFaults(polls=2), port=srv.port) as srv2:
        m2 = run_generation(batch_cfg(flavor, srv2.base_url), tmp_path)
        assert srv2.stats.batches_created == 0 and srv2.stats.calls == 0
    assert m2.cached_requests == 12 and comparable(read_records(tmp_path, Story)) == comparable(
        stories
    )


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_partial_failure_resubmits_only_failed_items(tmp_path, flavor):
    ctx, _ = SERVERS[flavor]
    faults = BatchFaults(errored=0.3, expired=0.15, malformed=0.1, polls=1, seed=7)
    with ctx(batch_faults=faults) as srv:
        cfg = batch_cfg(flavor, srv.base_url, topics="4", max_retries=2)
        m = run_generation(cfg, tmp_path)
        batches = list(srv.batches.values())  # submission order
        subs = dict(srv.stats.batch_submissions)
    planned = [r.custom_id for r in plan_requests(cfg)]
    assert len(planned) == m.planned_requests == 24
    assert set(subs) == set(planned)
    assert 2 <= len(batches) <= 3 and max(subs.values()) <= 3  # first try + max_retries=2
    # each resubmission holds exactly the items that errored, expired or came back malformed
    assert {c for c, _, _ in batches[0].items} == set(planned)
    for prev, nxt in zip(batches, batches[1:], strict=False):
        failed = {c for c, _, o in prev.items if o != "succeeded"}
        assert failed and {c for c, _, _ in nxt.items} == failed
    good = {c for b in batches for c, _, o in b.items if o == "succeeded"}
    assert sum(1 for b in batches for _, _, o in b.items if o == "succeeded") == len(good)
    # every planned request ends as records or as a reasoned failure; counts add up
    assert m.completed_requests == len(good) and 0 < len(good) < 24
    assert m.completed_requests + m.failed_requests == 24 and m.skipped_requests == 0
    reasons = {f.custom_id: f.reason for f in m.failures}
    assert set(reasons) == set(planned) - good
    assert all("after 3 batch submission(s)" in r for r in reasons.values())
    outcomes = {o for b in batches for _, _, o in b.items}
    assert outcomes == {"succeeded", "errored", "expired", "malformed"}  # every path exercised
    assert m.malformed_answers == sum(1 for b in batches for _, _, o in b.items if o == "malformed")
    stories = read_records(tmp_path, Story)
    assert len(stories) == m.records == 4 * len(good)
    assert {s.provenance.params["custom_id"] for s in stories} == good
    # rerun: finished requests come from the cache; only the failed ones are submitted again
    with ctx(batch_faults=BatchFaults(polls=1), port=srv.port) as srv2:
        m2 = run_generation(cfg, tmp_path)
        assert set(srv2.stats.batch_submissions) == set(reasons)
    assert m2.cached_requests == len(good) and m2.completed_requests == 24


def test_budget_refuses_a_batch_that_does_not_fit(tmp_path):
    with fake_anthropic_server() as srv:
        cfg = batch_cfg("anthropic", srv.base_url, budget_usd=0.01)
        with pytest.raises(BudgetExceeded) as info:
            run_generation(cfg, tmp_path)
        assert srv.stats.batches_created == 0 and srv.stats.calls == 0
    msg = str(info.value)
    assert len(msg.splitlines()) == 1 and "batch of 12 requests" in msg and "$0.0100" in msg
    assert not (tmp_path / "manifest.json").exists()
    with fake_anthropic_server() as srv:  # a budget that fits submits, and spends less than it
        m = run_generation(batch_cfg("anthropic", srv.base_url, budget_usd=0.2), tmp_path)
    assert m.completed_requests == 12 and m.usd.spent_this_run <= 0.2


def test_batch_needs_a_hosted_backend(tmp_path):
    with pytest.raises(ConfigError, match="--batch needs --backend anthropic or openai"):
        run_generation(
            GenerateConfig(
                kind="stories",
                backend="fake",
                model="fake",
                batch=True,
                topics="1",
                emotions="happy",
                progress=False,
            ),
            tmp_path,
        )


def test_server_without_a_batch_api_is_one_line(tmp_path):
    from emocurate.errors import BackendError

    # an OpenAI-compatible URL that has no /v1/files
    with fake_anthropic_server() as other, pytest.raises(BackendError) as info:
        run_generation(batch_cfg("openai", f"{other.base_url}/v1"), tmp_path)
    msg = str(info.value)
    assert msg.startswith("cannot submit a batch: openai: not found") and len(msg.splitlines()) == 1
    assert not (tmp_path / "cache" / "batches.json").exists()


@pytest.mark.parametrize("flavor", ["anthropic", "openai"])
def test_kill_9_after_submit_resumes_the_same_batch(tmp_path, flavor):
    ctx, _ = SERVERS[flavor]
    with ctx(batch_faults=BatchFaults(polls=1_000_000)) as srv:  # never ends while the child lives
        cfg = batch_cfg(flavor, srv.base_url, batch_poll_s=0.05)
        out = tmp_path / "killed"
        state = out / "cache" / "batches.json"
        child = start_generation(cfg, out)
        try:
            deadline = time.monotonic() + 30
            while not state.exists() and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.02)
            while srv.stats.batch_polls < 2 and time.monotonic() < deadline:
                time.sleep(0.02)  # it is waiting on the batch now
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert state.exists() and not (out / "manifest.json").exists()
        (saved,) = json.loads(state.read_text())["batches"]
        assert srv.stats.batches_created == 1 and set(srv.batches) == {saved["id"]}
        assert set(saved["items"]) == {r.custom_id for r in plan_requests(cfg)}
        srv.reset_stats()
        srv.batch_faults.polls = 3  # the batch finishes a few polls into the rerun
        m = run_generation(cfg, out)  # the same command again
        assert srv.stats.batches_created == 0 and not srv.stats.batch_submissions
        assert srv.stats.calls == 0 and srv.stats.batch_polls >= 1
    assert m.batches == BatchRun(submitted=[], resumed=[saved["id"]], state_file=str(state))
    assert m.completed_requests == 12 and m.cached_requests == 0
    resumed = read_records(out, Story)
    with ctx(batch_faults=BatchFaults(polls=3)) as fresh:  # an uninterrupted run
        m2 = run_generation(
            cfg.model_copy(update={"base_url": fresh.base_url}), tmp_path / "straight"
        )
        assert fresh.stats.batches_created == 1
    assert m2.batches is not None and m2.batches.submitted == [
        saved["id"]
    ]  # same content, same (fake) batch id
    straight = read_records(tmp_path / "straight", Story)
    assert len(resumed) == 48 and comparable(resumed) == comparable(straight)
    assert m.usd.spent_this_run == pytest.approx(m2.usd.spent_this_run)
