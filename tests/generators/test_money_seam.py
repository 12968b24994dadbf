"""One seam for money (issue 20, item 4): the ledger owns reservations, batch prices, the
cached/uncached split and the counts; the batch runner reaches none of the engine's privates."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from emocurate.generators import batch
from emocurate.generators.backends.base import ChatRequest, Completion, Message
from emocurate.generators.cache import ResponseCache
from emocurate.generators.ledger import Ledger, RequestResult
from emocurate.generators.pricing import Price, estimate_cost

PRICE = Price(input=3.0, output=15.0)


def request(i: int, text: str | None = None) -> ChatRequest:
    return ChatRequest(
        custom_id=f"r{i}",
        model="m",
        messages=[Message(role="user", content=text or f"request {i}")],
        max_tokens=100,
    )


def ledger(**kw: Any) -> Ledger:
    return Ledger(backend="openai", model="m", prices={"m": PRICE}, **kw)


def test_batch_runner_touches_no_private_member_of_another_object() -> None:
    """``x._name`` only on ``self``: the runner talks to the engine's parts by public names."""
    tree = ast.parse(Path(batch.__file__).read_text("utf-8"))
    private = sorted(
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id in {"self", "cls"})
    )
    assert private == []


def test_hold_reserves_a_submitted_batch_even_past_the_budget() -> None:
    led = ledger(budget_usd=1.0)
    assert not led.try_reserve(1.5)  # a new batch that does not fit is refused...
    led.hold(1.5)  # ...but one already submitted is held, whatever it costs
    assert led.reserved == 1.5 and led.remaining() == pytest.approx(-0.5)
    assert not led.fits(0.01)
    led.release(1.5)
    assert led.remaining() == pytest.approx(1.0)


def test_batch_prices_come_from_the_ledger() -> None:
    led = ledger()  # bills at list price by default...
    r = request(0)
    c = Completion(input_tokens=1000, output_tokens=100)
    assert led.worst_case(r) == estimate_cost(r, PRICE)
    assert led.worst_case(r, batch=True) == estimate_cost(r, PRICE, batch=True)
    assert led.cost(r, c, batch=True) == pytest.approx(led.cost(r, c) / 2)
    assert led.cost(None, c) == PRICE.cost(c)  # an item of an earlier run's batch
    batched = ledger(batch_pricing=True)  # ...or at the batch price throughout
    assert batched.worst_case(r) == led.worst_case(r, batch=True)


def test_split_answers_from_the_cache_and_groups_requests_by_key(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "responses.jsonl")
    led = ledger(cache=cache)
    reqs = [request(0, "same"), request(1), request(2, "same"), request(3)]
    answer = Completion(text="hi", input_tokens=10, output_tokens=5)
    led.store(led.key(reqs[1]), answer, "r1")
    split = led.split(reqs)
    assert split.keys == [led.key(r) for r in reqs]
    assert list(split.cached) == [1] and split.cached[1].cached
    assert split.cached[1].cost_usd == led.cost(reqs[1], answer)
    assert split.todo == {split.keys[0]: [0, 2], split.keys[3]: [3]}
    s = led.stats
    assert (s.planned, s.cached, s.done) == (4, 1, 1)
    cache.close()


def test_outcomes_and_errors_are_counted_by_the_ledger() -> None:
    led = ledger()
    led.count(RequestResult(custom_id="a", completion=Completion(text="x")))
    led.count(RequestResult(custom_id="b", error="failed after 1 attempt(s): x"))
    led.count(RequestResult(custom_id="c", error="not run", skipped=True))
    led.note_error("rate_limit")
    assert led.malformed(ValueError("bad answer\nmore")) == "malformed: bad answer"
    led.end_run(1.5)
    s = led.stats
    assert (s.done, s.failed, s.skipped, s.malformed) == (1, 1, 1, 1)
    assert s.errors == {"rate_limit": 1, "malformed": 1} and s.elapsed_s == 1.5
