"""One request ledger: the bookkeeping that the engine and the batch runner share.

Both runners send requests differently (one call at a time, or a provider batch), but what a
request costs and whether it may be sent is decided here, once:

* **Cache.** The response-cache key covers the rendered request *and the endpoint* (the base
  URL with credentials stripped), so two OpenAI-compatible servers serving the same model
  name never share answers.
* **Prices.** A request's worst case (estimated input, ``max_tokens`` output) and the billed
  cost of an answer. A ``--budget-usd`` for a model missing from the price table is refused
  (a budget that cannot be priced would be silently ignored) unless prices are given.
* **Budget.** The budget is a *total* per output folder: spend is persisted in
  ``OUT/cache/spend.ledger`` after every billed call, so a rerun with the same budget does not
  spend it again. Each request reserves its worst case before it is sent and releases it
  when it ends; a request that does not fit waits while others hold reservations (their
  actual cost is usually far below the worst case) and is skipped only when it does not fit
  with nothing else reserved. So a budget below ``concurrency x worst case`` is still spent
  up to its last request's worth.
* **Counts.** :class:`EngineStats` (tokens, USD, calls, retries, malformed answers, failures).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import Field

from emocurate.errors import BudgetExceeded, ConfigError
from emocurate.generators.backends.base import ChatRequest, Completion
from emocurate.generators.cache import ResponseCache, request_key
from emocurate.generators.pricing import FREE_BACKENDS, Price, estimate_cost, find_price
from emocurate.io import atomic_write_bytes
from emocurate.records import Model
from emocurate.redact import endpoint_id

SPEND_FILE = "spend.ledger"
"""JSON content, but not a ``.json`` name: ``datasets.load_dataset(OUT)`` infers a folder's format
from its most common file extension, and must keep finding ``data/*.parquet``."""


class EngineStats(Model):
    """Counters for the progress bar and the manifest."""

    planned: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    calls: int = 0
    retries: int = 0
    malformed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    usd_spent: float = 0.0
    elapsed_s: float = 0.0
    errors: dict[str, int] = Field(default_factory=dict)
    rate_limits: dict[str, float | None] = Field(default_factory=dict)
    budget_reached: bool = False
    price_known: bool = True

    @property
    def billed_tokens(self) -> int:
        """Every token a provider counted (input, output, cache reads and writes)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


class Spend(Model):
    """What an output folder has spent over all its runs (``OUT/cache/spend.ledger``)."""

    usd_total: float = 0.0
    calls: int = 0


class Ledger:
    """Cache, prices, budget reservations and counts for one backend and model.

    Args:
        backend: backend name (part of the cache key, decides whether calls are free).
        model: the backend's model (its price is looked up once).
        base_url: the endpoint; credentials are stripped before it enters any key.
        cache: the response cache (None: no caching).
        prices: price overrides by model (``--price-input/--price-output``).
        budget_usd: total budget for the output folder (None: unlimited).
        batch_pricing: bill at the batch discount.
        spend_path: where the folder's cumulative spend is kept (None: this process only).

    Raises:
        ConfigError: a budget was given for a model with no known price.
    """

    def __init__(
        self,
        *,
        backend: str,
        model: str,
        base_url: str | None = None,
        cache: ResponseCache | None = None,
        prices: dict[str, Price] | None = None,
        budget_usd: float | None = None,
        batch_pricing: bool = False,
        spend_path: str | Path | None = None,
    ) -> None:
        self.backend = backend
        self.model = model
        self.endpoint = endpoint_id(base_url)
        self.cache = cache
        self.prices = dict(prices or {})
        self.budget_usd = budget_usd
        self.batch_pricing = batch_pricing
        self.price, known = find_price(backend, model, self.prices)
        if budget_usd is not None and not known and backend not in FREE_BACKENDS:
            raise ConfigError(
                f"--budget-usd cannot be enforced: model '{model}' is not in the price table; "
                "pass --price-input and --price-output (USD per 1M tokens)"
            )
        self.stats = EngineStats(price_known=known)
        self.reserved = 0.0
        self.spend_path = Path(spend_path) if spend_path is not None else None
        self.prior = self._load_spend()
        self._waiters: list[asyncio.Future[None]] = []

    # -- cache --------------------------------------------------------------------------------
    def key(self, request: ChatRequest) -> str:
        """The response-cache key of ``request`` at this ledger's endpoint."""
        return request_key(request, self.backend, self.endpoint)

    def lookup(self, key: str) -> Completion | None:
        """A cached answer for ``key`` (None without a cache or on a miss)."""
        return self.cache.get(key) if self.cache is not None else None

    def store(self, key: str, completion: Completion, custom_id: str) -> None:
        """Keep a good answer (appended durably before the request counts as done)."""
        if self.cache is not None:
            self.cache.put(key, completion, custom_id=custom_id)

    # -- prices -------------------------------------------------------------------------------
    def price_for(self, request: ChatRequest) -> Price:
        """The price that applies to ``request``'s model."""
        if request.model == self.model or not request.model:
            return self.price
        return find_price(self.backend, request.model, self.prices)[0]

    def worst_case(self, request: ChatRequest, *, cached_system: bool = False) -> float:
        """Worst-case USD of one request (estimated input, ``max_tokens`` output)."""
        return estimate_cost(
            request, self.price_for(request), cached_system=cached_system, batch=self.batch_pricing
        )

    def cost(self, request: ChatRequest, completion: Completion) -> float:
        """USD billed for one completion of ``request``."""
        return self.price_for(request).cost(completion, batch=self.batch_pricing)

    # -- budget -------------------------------------------------------------------------------
    @property
    def spent_total(self) -> float:
        """USD this output folder has spent, earlier runs included."""
        return self.prior.usd_total + self.stats.usd_spent

    def remaining(self) -> float | None:
        """Budget left after spend and outstanding reservations (None: no budget)."""
        if self.budget_usd is None:
            return None
        return self.budget_usd - self.spent_total - self.reserved

    def fits(self, amount: float) -> bool:
        """Whether ``amount`` more can be reserved now."""
        left = self.remaining()
        return left is None or amount <= left + 1e-12

    def try_reserve(self, amount: float) -> bool:
        """Reserve ``amount`` if it fits now (the batch runner's non-waiting form)."""
        if not self.fits(amount):
            return False
        self.reserved += amount
        return True

    async def reserve(self, amount: float) -> bool:
        """Reserve ``amount``; wait while other reservations may still free room.

        Returns False (and marks the budget reached) only when ``amount`` does not fit with
        nothing else reserved: then no later release can make room.
        """
        while True:
            if self.try_reserve(amount):
                return True
            if self.reserved <= 1e-12:
                self.stats.budget_reached = True
                return False
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut

    def release(self, amount: float) -> None:
        """Give back a reservation (after :meth:`charge` for a billed call) and wake waiters."""
        self.reserved = max(0.0, self.reserved - amount)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def check_floor(self, to_send: list[ChatRequest]) -> None:
        """Refuse a run whose budget cannot pay for even the cheapest request to send.

        Raises:
            BudgetExceeded: with how much the folder already spent and how to continue.
        """
        left = self.remaining()
        if left is None or not to_send:
            return
        cheapest = min(self.worst_case(r) for r in to_send)
        if cheapest > left:
            raise BudgetExceeded(self.budget_message(cheapest))

    def budget_message(self, cheapest: float | None = None) -> str:
        """One line: what the budget is, what was spent, how to raise it."""
        budget = self.budget_usd or 0.0
        what = (
            f"below the estimated cost of one request (${cheapest:.4f} for {self.model})"
            if cheapest is not None
            else "reached"
        )
        spent = self.prior.usd_total
        prior = (
            f"; this output folder already spent ${spent:.4f} of it in earlier runs"
            if spent > 0
            else ""
        )
        return (
            f"budget ${budget:.4f} is {what}{prior}; the budget is a total for the folder: "
            "raise --budget-usd to continue"
        )

    # -- counts -------------------------------------------------------------------------------
    def charge(self, completion: Completion, usd: float) -> float:
        """Count one billed call (tokens and ``usd``) and persist the folder's spend."""
        s = self.stats
        s.calls += 1
        s.input_tokens += completion.input_tokens
        s.output_tokens += completion.output_tokens
        s.cache_read_tokens += completion.cache_read_tokens
        s.cache_write_tokens += completion.cache_write_tokens
        s.usd_spent += usd
        self._save_spend()
        return usd

    def _load_spend(self) -> Spend:
        path = self.spend_path
        if path is None or not path.exists():
            return Spend()
        try:
            return Spend.model_validate_json(path.read_bytes())
        except ValueError:
            raise ConfigError(
                f"spend file {path} is unreadable; it records what this folder has spent, "
                "so it is not ignored: fix it or remove it to reset the total"
            ) from None

    def _save_spend(self) -> None:
        if self.spend_path is None:
            return
        total = Spend(
            usd_total=self.spent_total, calls=self.prior.calls + self.stats.calls
        ).model_dump()
        atomic_write_bytes(self.spend_path, (json.dumps(total) + "\n").encode("utf-8"))
