"""The request ledger, limits and exit codes: each test reproduces one defect of issue 11."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from emocurate.cli import main
from emocurate.errors import BudgetExceeded, ConfigError
from emocurate.generators.backends.base import CallError, ChatRequest, Completion, Message
from emocurate.generators.backends.fake import FakeBackend
from emocurate.generators.engine import Engine, EngineConfig
from emocurate.generators.ledger import read_spend
from emocurate.generators.limits import RateLimiter, TokenBucket
from emocurate.generators.pricing import Price
from emocurate.generators.run import run_generation
from emocurate.io import read_records
from emocurate.records import Story
from tests.fakes.llm_servers import Faults, default_responder, fake_openai_server
from tests.generators.helpers import hosted_cfg

FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


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


class Fraction(FakeBackend):
    """Answers that use ``share`` of ``max_tokens``; optional latency."""

    def __init__(self, share: float, latency_s: float = 0.0) -> None:
        super().__init__()
        self.share = share
        self.lat = latency_s
        self.starts: list[float] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        self.starts.append(time.monotonic())
        if self.lat:
            await asyncio.sleep(self.lat)
        return Completion(
            text="x",
            input_tokens=10,
            output_tokens=int(request.max_tokens * self.share),
            model=self.model,
        )


# -- ledger: budget -----------------------------------------------------------------------------
def test_budget_for_an_unpriced_model_is_refused_before_any_call(tmp_path):
    with fake_openai_server() as srv:
        cfg = hosted_cfg("openai", srv.base_url, model="my-local-llm", budget_usd=0.01)
        with pytest.raises(ConfigError, match="--price-input and --price-output") as info:
            run_generation(cfg, tmp_path)
        assert srv.stats.calls == 0 and len(str(info.value).splitlines()) == 1
        prices = {"price_input": 1.0, "price_output": 2.0}
        m = run_generation(cfg.model_copy(update=prices), tmp_path)  # now the budget applies
        assert m.usd.price_known and m.budget_reached
        assert 0 < m.usd.spent_this_run <= 0.01


def test_budget_is_a_total_for_the_output_folder(tmp_path):
    with fake_openai_server() as srv:
        cfg = hosted_cfg("openai", srv.base_url, budget_usd=0.002, concurrency=2)
        first = run_generation(cfg, tmp_path)
        assert first.budget_reached
        with pytest.raises(BudgetExceeded, match="total for the folder: raise --budget-usd"):
            run_generation(cfg.model_copy(update={"seed": 1}), tmp_path)  # new requests
    spent = read_spend(tmp_path / "cache" / "spend.ledger").usd_total
    assert spent == pytest.approx(first.usd.spent_this_run, rel=1e-3) and spent <= 0.002


def test_budget_below_concurrency_times_worst_case_is_still_spent():
    price = {"fake-model": Price(input=1000.0, output=1000.0)}
    backend = Fraction(0.25, latency_s=0.002)
    worst = Engine(backend, EngineConfig(prices=price), progress=False).estimate(
        reqs(1, max_tokens=100)
    )
    budget = 12 * worst  # 16 requests in flight would need 16 x worst case
    eng = Engine(
        backend, EngineConfig(prices=price, budget_usd=budget, concurrency=16), progress=False
    )
    out = eng.run_sync(reqs(200, max_tokens=100))
    assert eng.stats.budget_reached and eng.stats.usd_spent <= budget
    assert eng.stats.usd_spent >= 0.9 * budget
    assert all(r.skipped for r in out if not r.ok)


# -- ledger: cache ------------------------------------------------------------------------------
def test_cache_key_includes_the_endpoint(tmp_path):
    cache = tmp_path / "shared.jsonl"
    with fake_openai_server() as a, fake_openai_server() as b:
        m1 = run_generation(hosted_cfg("openai", a.base_url, cache=str(cache)), tmp_path / "a")
        m2 = run_generation(hosted_cfg("openai", b.base_url, cache=str(cache)), tmp_path / "b")
        assert a.stats.calls == m1.planned_requests
        assert b.stats.calls == m2.planned_requests and m2.cached_requests == 0


# -- ledger: malformed output ---------------------------------------------------------------------
def test_only_a_parse_error_counts_as_malformed_output():
    backend = FakeBackend()

    def buggy(req: ChatRequest, c: Completion) -> None:
        raise ValueError("a bug in the parser, not a bad answer")

    eng = Engine(backend, EngineConfig(max_retries=6, **FAST), progress=False)
    with pytest.raises(ValueError, match="a bug in the parser"):
        eng.run_sync(reqs(1), check=buggy)
    assert backend.calls == 1 and eng.stats.malformed == 0


# -- ledger: partial answers ----------------------------------------------------------------------
def test_partial_answers_are_counted_and_refilled_by_a_rerun(tmp_path):
    def one_item(body: dict) -> dict:
        data = default_responder(body)
        schema = body["response_format"]["json_schema"]["schema"]
        if schema["properties"]["items"]["minItems"] == 4:
            data["items"] = data["items"][:1]  # a partial answer: 1 of 4 stories
        return data

    with fake_openai_server(responder=one_item) as srv:
        cfg = hosted_cfg("openai", srv.base_url)
        m = run_generation(cfg, tmp_path)
        assert m.records == 12 and m.planned_records == 48
        assert m.partial_requests == 12 and m.missing_records == 36
        m2 = run_generation(cfg, tmp_path)
    assert m2.refill_requests == 12 and m2.missing_records == 0
    stories = read_records(tmp_path, Story)
    assert len(stories) == len({s.id for s in stories}) == 48
    per_cell: dict[tuple[str, str], int] = {}
    for s in stories:
        per_cell[(s.emotion, s.topic)] = per_cell.get((s.emotion, s.topic), 0) + 1
    assert set(per_cell.values()) == {8}  # per_topic restored for every emotion x topic


# -- connection faults ----------------------------------------------------------------------------
def test_connection_reset_before_the_first_success_is_retried(tmp_path):
    # seed 9 draws three resets in a row first: the first request is reset twice, then retried
    with fake_openai_server(faults=Faults(reset=0.5, seed=9)) as srv:
        cfg = hosted_cfg("openai", srv.base_url, concurrency=1, max_retries=8)
        m = run_generation(cfg, tmp_path)
        assert srv.stats.faults["reset"] >= 3
    assert m.completed_requests == m.planned_requests and m.error_counts["connection"] >= 3


# -- limits ---------------------------------------------------------------------------------------
def test_output_tpm_is_reached_when_answers_use_a_fifth_of_max_tokens():
    """Achieved rate as a provider meters it: tokens of the calls sent between the first and
    the last call, over that span (the bench's RPM figure is measured the same way)."""
    limit = 180_000.0  # 3,000 output tokens per second; max_tokens 4,000 > one second's worth
    backend = Fraction(0.2, latency_s=0.3)
    eng = Engine(backend, EngineConfig(output_tpm=limit, concurrency=32), progress=False)
    eng.run_sync(reqs(14, max_tokens=4000))
    span = backend.starts[-1] - backend.starts[0]
    achieved = 800 * (len(backend.starts) - 1) / span * 60
    assert 0.9 * limit <= achieved <= 1.1 * limit


def test_bucket_windows_stay_within_the_documented_bound():
    async def admit(bucket: TokenBucket, n: int, idle_s: float) -> list[float]:
        await asyncio.sleep(idle_s)
        t0 = time.monotonic()
        out = []
        for _ in range(n):
            await bucket.acquire(1)
            out.append(time.monotonic() - t0)
        return out

    for idle in (0.0, 0.6):
        bucket = TokenBucket(6000, burst_s=0.5)  # 100/s, burst 50
        ts = asyncio.run(admit(bucket, 200, idle))
        first = sum(1 for t in ts if t < 1.0)
        worst = max(sum(1 for u in ts if t <= u < t + 1.0) for t in ts)
        assert worst <= bucket.max_in_window(1.0) + 1
        if idle == 0.0:
            assert first <= bucket.max_in_window(1.0, from_start=True) + 1
        else:
            assert first > bucket.max_in_window(1.0, from_start=True) + 1  # the saved burst


def test_output_estimate_is_trued_up_by_debt():
    lim = RateLimiter(output_tpm=60_000)

    async def go() -> None:
        for _ in range(3):
            r = await lim.acquire(0, 100)
            lim.settle(r, 20, max_tokens=100)
        r = await lim.acquire(0, 100)
        assert r == 20  # the estimate follows the answers
        level = lim.buckets["output_tpm"].level
        lim.settle(r, 100, max_tokens=100)  # this answer used all of max_tokens
        assert lim.buckets["output_tpm"].level < level - 79  # the shortfall is owed

    asyncio.run(go())


# -- exit codes -----------------------------------------------------------------------------------
def _cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0), capsys.readouterr().err.strip()


def _gen_args(base_url: str, out: str, *extra: str) -> list[str]:
    return [
        "generate",
        "stories",
        "--backend",
        "openai",
        "--model",
        "gpt-4o-mini",
        "--base-url",
        base_url,
        "--emotions",
        "happy",
        "--topics",
        "1",
        "--per-topic",
        "4",
        "--out",
        out,
        *extra,
    ]


def test_exit_status_is_4_when_any_planned_request_failed(tmp_path, capsys):
    with fake_openai_server(faults=Faults(server_error=1.0)) as srv:
        args = _gen_args(srv.base_url, str(tmp_path / "o"), "--max-retries", "0")
        code, err = _cli(args, capsys)
    assert code == 4 and "failed" in err and len(err.splitlines()) == 1
    with fake_openai_server() as srv:
        main(_gen_args(srv.base_url, str(tmp_path / "ok")))  # all answered: returns, status 0


def test_exit_status_is_4_when_the_batch_is_rejected(tmp_path, capsys, monkeypatch):
    import emocurate.generators.batch as batch_mod

    class Rejecting:
        name = "openai"
        max_items = 10_000

        async def submit(self, requests):
            raise CallError("400 rejected: invalid batch", kind="bad_request", status=400)

    monkeypatch.setattr(batch_mod, "make_batch_provider", lambda backend: Rejecting())
    with fake_openai_server() as srv:
        args = _gen_args(srv.base_url, str(tmp_path / "o"), "--batch", "--batch-poll", "0.01")
        code, err = _cli(args, capsys)
    assert code == 4 and "rejected" in err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["failed_requests"] == m["planned_requests"] == 1


# -- security -------------------------------------------------------------------------------------
def test_credentials_in_the_base_url_are_never_written(tmp_path, capsys):
    """A full generate run (CLI) with user:pass@ and an api key in the query string; then every
    file written and everything printed is searched for the secrets."""
    secrets = ("s3cretpw", "k3ysecret")
    with fake_openai_server() as srv:
        url = srv.base_url.replace("http://", "http://alice:s3cretpw@")
        out = tmp_path / "o"
        main(_gen_args(url, str(out)))
        assert srv.stats.ok >= 1  # the run really went through the server
        for i, bad in enumerate((url + "?api-key=k3ysecret", url.replace(str(srv.port), "1"))):
            with pytest.raises(SystemExit):  # failing runs: their errors carry the URL
                main(_gen_args(bad, str(tmp_path / f"bad{i}")))
    printed = capsys.readouterr()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files)
    for p in files:
        data = p.read_bytes()
        assert not any(s.encode() in data for s in secrets), p
    assert not any(s in printed.out + printed.err for s in secrets)
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["base_url"].startswith("http://***@127.0.0.1:")
