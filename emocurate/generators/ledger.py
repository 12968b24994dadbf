"""One request ledger: the bookkeeping that the engine and the batch runner share.

Both runners send requests differently (one call at a time, or a provider batch), but what a
request costs and whether it may be sent is decided here, once:

* **Cache.** The response-cache key covers the rendered request *and the endpoint* (the base
  URL with credentials stripped), so two OpenAI-compatible servers serving the same model
  name never share answers.
* **Prices.** A request's worst case (estimated input, ``max_tokens`` output) and the billed
  cost of an answer. A ``--budget-usd`` for a model missing from the price table is refused
  (a budget that cannot be priced would be silently ignored) unless prices are given.
* **Budget.** The budget is a *total* per output folder, kept in ``OUT/cache/spend.ledger``,
  an append-only write-ahead log (one JSON line per event, each a single ``O_APPEND`` write,
  fsynced): before a request is sent its worst case is appended as ``send``; its answer appends
  ``settle`` with the real cost, an answer the provider did not bill (an error status, no
  connection) appends ``void``. A ``send`` never settled (its process was killed, or the answer
  was lost in transit: a timeout, a dropped connection, an interrupt that could not wait for
  it) counts as spent at its worst case, because the provider may have billed it; the next run
  reports it (``in_flight_at_kill``). So the folder's ledger is never below what the provider
  billed, and a run never sends a request whose worst case does not fit in what is left. A line
  torn by a kill mid-write (only ever the last one) is ignored: a torn ``send`` was never
  sent, a torn ``settle`` leaves its request counted at worst case. Each request reserves its
  worst case before it is sent and releases it when it ends; a request that does not fit
  waits while others hold reservations (their actual cost is usually far below the worst
  case) and is skipped only when it does not fit with nothing else reserved. So a budget below
  ``concurrency x worst case`` is still spent up to its last request's worth.
* **Counts.** :class:`EngineStats` (tokens, USD, calls, retries, malformed answers, failures)
  and the error counts by kind; every request's outcome is counted here, by whichever runner.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from emocurate.errors import BudgetExceeded, ConfigError
from emocurate.generators.backends.base import ChatRequest, Completion
from emocurate.generators.cache import ResponseCache, request_key
from emocurate.generators.pricing import FREE_BACKENDS, Price, estimate_cost, find_price
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


class RequestResult(Model):
    """What became of one request (same order as the requests given to a run)."""

    custom_id: str
    completion: Completion | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = 0
    cost_usd: float = 0.0
    """USD billed for the completion kept (its original cost when it came from the cache)."""
    skipped: bool = False
    """Not sent because the budget was reached (``error`` says so)."""

    @property
    def ok(self) -> bool:
        """Whether a usable completion came back."""
        return self.completion is not None and self.error is None


@dataclass
class CacheSplit:
    """A run's requests split into those the response cache answers and those to send."""

    keys: list[str]
    """The response-cache key of each request (same order)."""
    cached: dict[int, RequestResult]
    """Answers from the cache, by request index (they cost nothing now)."""
    todo: dict[str, list[int]]
    """Cache key -> indices of the requests it answers; the first index is the one sent."""


class FolderSpend(Model):
    """What an output folder has spent over all its runs (read from ``OUT/cache/spend.ledger``).

    Not the manifest's :class:`~emocurate.artifacts.Spend` (a run's report: this run, the
    folder, cached answers, prices): this is the raw total the budget is checked against.
    """

    settled_usd: float = 0.0
    """Billed answers, at their real usage."""
    calls: int = 0
    in_flight: int = 0
    """Requests sent and never settled (a killed run, a lost answer): counted at worst case."""
    in_flight_usd: float = 0.0

    @property
    def usd_total(self) -> float:
        """Everything the folder may have been billed: settled plus in flight at worst case."""
        return self.settled_usd + self.in_flight_usd


def read_spend(path: str | Path) -> FolderSpend:
    """The spend recorded in a ledger file (an empty :class:`FolderSpend` when it does not exist).

    Raises:
        ConfigError: a line other than the last is unreadable (the file is not ignored: it
            records what the folder has spent).
    """
    p = Path(path)
    if not p.exists():
        return FolderSpend()
    raw = p.read_bytes()
    rows = raw.split(b"\n")
    sends: dict[str, float] = {}
    settled = 0.0
    calls = 0
    for i, line in enumerate(rows):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            if i == len(rows) - 1:  # the last line, torn by a kill mid-write
                continue
            raise ConfigError(
                f"spend file {p} line {i + 1} is unreadable; it records what this folder has "
                "spent, so it is not ignored: fix it or remove it to reset the total"
            ) from None
        op = row.get("op")
        if op is None and "usd_total" in row:  # the earlier one-total format
            settled += float(row["usd_total"])
            calls += int(row.get("calls", 0))
        elif op == "send":
            sends[str(row["id"])] = float(row["usd"])
        elif op == "settle":
            sends.pop(str(row.get("id")), None)
            settled += float(row["usd"])
            calls += int(row.get("calls", 1))
        elif op == "void":
            sends.pop(str(row.get("id")), None)
    return FolderSpend(
        settled_usd=settled, calls=calls, in_flight=len(sends), in_flight_usd=sum(sends.values())
    )


class SpendLog:
    """The append side of ``spend.ledger``: one ``O_APPEND`` write per event, fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        size = path.stat().st_size
        if size:
            with path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a torn last line: start the next one clean
                    os.write(self._fd, b"\n")
        self._ids = itertools.count()
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def new_id(self) -> str:
        """A ledger entry id, unique across processes."""
        return f"{self._prefix}-{next(self._ids)}"

    def append(self, row: dict[str, object]) -> None:
        """Append one event durably."""
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, (json.dumps(row, separators=(",", ":")) + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the descriptor (reopened by the next append)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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
        self.prior = read_spend(self.spend_path) if self.spend_path is not None else FolderSpend()
        self._log = SpendLog(self.spend_path) if self.spend_path is not None else None
        self._local_ids = itertools.count()
        self.in_flight: dict[str, float] = {}
        """This run's requests sent and not yet settled: entry id -> worst case."""
        self.lost_usd = 0.0
        """This run's requests whose answers were lost (counted at worst case)."""
        self.lost = 0
        self.errors: Counter[str] = Counter()
        """Failed attempts by kind (``rate_limit``, ``timeout``, ``malformed``, ``batch_expired``...)."""
        self._waiters: list[asyncio.Future[None]] = []
        self.stopping = False
        """Set on an interrupt: :meth:`reserve` gives up (no new request is sent)."""

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

    def split(self, requests: list[ChatRequest]) -> CacheSplit:
        """Answer what the cache can; group the rest by key (a request sent once answers every
        request with its key). Counts the requests as planned, the cached ones as done."""
        keys = [self.key(r) for r in requests]
        cached: dict[int, RequestResult] = {}
        todo: dict[str, list[int]] = {}
        self.stats.planned += len(requests)
        for i, (req, key) in enumerate(zip(requests, keys, strict=True)):
            hit = self.lookup(key)
            if hit is not None:
                cached[i] = RequestResult(
                    custom_id=req.custom_id,
                    completion=hit,
                    cached=True,
                    cost_usd=self.cost(req, hit),
                )
            else:
                todo.setdefault(key, []).append(i)
        self.stats.cached += len(cached)
        self.stats.done += len(cached)
        return CacheSplit(keys=keys, cached=cached, todo=todo)

    # -- prices -------------------------------------------------------------------------------
    def price_for(self, request: ChatRequest | None) -> Price:
        """The price that applies to ``request``'s model (None: the ledger's model)."""
        if request is None or request.model == self.model or not request.model:
            return self.price
        return find_price(self.backend, request.model, self.prices)[0]

    def worst_case(
        self, request: ChatRequest, *, cached_system: bool = False, batch: bool | None = None
    ) -> float:
        """Worst-case USD of one request (estimated input, ``max_tokens`` output); ``batch``:
        at the batch price (None: as the ledger bills, :attr:`batch_pricing`)."""
        batch = self.batch_pricing if batch is None else batch
        return estimate_cost(
            request, self.price_for(request), cached_system=cached_system, batch=batch
        )

    def cost(
        self, request: ChatRequest | None, completion: Completion, *, batch: bool | None = None
    ) -> float:
        """USD billed for one completion of ``request`` (``batch`` as in :meth:`worst_case`)."""
        batch = self.batch_pricing if batch is None else batch
        return self.price_for(request).cost(completion, batch=batch)

    # -- budget -------------------------------------------------------------------------------
    @property
    def spent_total(self) -> float:
        """USD this output folder has spent, earlier runs included."""
        return self.prior.usd_total + self.stats.usd_spent + self.lost_usd

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

    def hold(self, amount: float) -> None:
        """Reserve ``amount`` whether or not it fits: a batch an earlier run already submitted
        (the provider may bill it) is held at its estimate until its results are collected."""
        self.reserved += amount

    async def reserve(self, amount: float) -> bool:
        """Reserve ``amount``; wait while other reservations may still free room.

        Returns False (and marks the budget reached) when ``amount`` does not fit with nothing
        else reserved: then no later release can make room. Also False, without marking the
        budget, once :attr:`stopping` is set (an interrupt).
        """
        while True:
            if self.stopping:
                return False
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
        lost = self.prior.in_flight_usd
        of_which = (
            f" (${lost:.4f} of it for {self.prior.in_flight} requests in flight when a run was "
            "killed, counted at their worst case: the provider may have billed them)"
            if lost > 0
            else ""
        )
        prior = (
            f"; this output folder already spent ${spent:.4f} of it in earlier runs{of_which}"
            if spent > 0
            else ""
        )
        return (
            f"budget ${budget:.4f} is {what}{prior}; the budget is a total for the folder: "
            "raise --budget-usd to continue"
        )

    # -- write-ahead booking --------------------------------------------------------------------
    def begin(self, worst_usd: float) -> str:
        """Book a request as in flight at its worst case, before it is sent; returns its id."""
        entry = self._log.new_id() if self._log is not None else f"local-{next(self._local_ids)}"
        self.in_flight[entry] = worst_usd
        if self._log is not None:
            self._log.append({"op": "send", "id": entry, "pid": os.getpid(), "usd": worst_usd})
        return entry

    def settle(self, entry: str, completion: Completion, usd: float) -> float:
        """Book the answer of request ``entry`` at its real cost; returns ``usd``."""
        self.in_flight.pop(entry, None)
        self._count(completion, usd)
        if self._log is not None:
            self._log.append({"op": "settle", "id": entry, "usd": usd, "calls": 1})
        return usd

    def void(self, entry: str) -> None:
        """Request ``entry`` was not billed (an error status, or it never reached the server)."""
        self.in_flight.pop(entry, None)
        if self._log is not None:
            self._log.append({"op": "void", "id": entry})

    def abandon(self, entry: str) -> None:
        """The answer of ``entry`` is lost (timeout, dropped connection, interrupt): the
        provider may have billed it, so it stays booked at its worst case."""
        worst = self.in_flight.pop(entry, None)
        if worst is not None:
            self.lost_usd += worst
            self.lost += 1

    # -- counts -------------------------------------------------------------------------------
    def charge(self, completion: Completion, usd: float) -> float:
        """Count one billed call (tokens and ``usd``) and book it as settled at once (the
        batch runner: its answers arrive together, after submission was booked in batches.json)."""
        self._count(completion, usd)
        if self._log is not None:
            self._log.append({"op": "settle", "id": self._log.new_id(), "usd": usd, "calls": 1})
        return usd

    def count(self, result: RequestResult) -> None:
        """Count how one request ended: done, failed, or skipped (not sent)."""
        if result.skipped:
            self.stats.skipped += 1
        elif result.error is not None:
            self.stats.failed += 1
        else:
            self.stats.done += 1

    def note_error(self, kind: str) -> None:
        """Count one failed attempt of ``kind``."""
        self.errors[kind] += 1

    def malformed(self, exc: Exception) -> str:
        """Count a completion that failed the caller's ``check``; returns the error to report."""
        self.errors["malformed"] += 1
        self.stats.malformed += 1
        return f"malformed: {str(exc).splitlines()[0] if str(exc) else 'unparseable'}"

    def end_run(self, elapsed_s: float) -> None:
        """Add a run's time and copy the error counts into :attr:`stats`."""
        self.stats.elapsed_s += elapsed_s
        self.stats.errors = dict(self.errors)

    def _count(self, completion: Completion, usd: float) -> None:
        s = self.stats
        s.calls += 1
        s.input_tokens += completion.input_tokens
        s.output_tokens += completion.output_tokens
        s.cache_read_tokens += completion.cache_read_tokens
        s.cache_write_tokens += completion.cache_write_tokens
        s.usd_spent += usd

    def close(self) -> None:
        """Close the ledger file (appends reopen it)."""
        if self._log is not None:
            self._log.close()

    def folder_spend(self) -> FolderSpend:
        """The folder's spend now: earlier runs and this one."""
        p = self.prior
        return FolderSpend(
            settled_usd=p.settled_usd + self.stats.usd_spent,
            calls=p.calls + self.stats.calls,
            in_flight=p.in_flight + self.lost + len(self.in_flight),
            in_flight_usd=p.in_flight_usd + self.lost_usd + sum(self.in_flight.values()),
        )
