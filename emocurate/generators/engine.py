"""The request engine: concurrency, rate limits, retries, cache, cost and budget in one place.

Backends make exactly one attempt per call (their SDKs are built with ``max_retries=0``);
the engine alone decides whether and when to retry, so a 429 is never retried twice over.

The bookkeeping (cache keys, prices, budget reservations, spend, counts) lives in one
:class:`~emocurate.generators.ledger.Ledger`, shared with the batch runner.

For each request, in order: look it up in the response cache (a hit costs nothing); reserve
its worst-case cost against the budget (waiting while other requests hold reservations; a
request that cannot fit even alone is not sent and the run stops cleanly); take one request
and its estimated tokens from the token buckets; call the backend; on 429/529/5xx/timeouts/
dropped or reset connections wait (``retry-after`` when the server sent one, otherwise
exponential backoff with full jitter) and try again; on success run the caller's ``check``
(a :class:`~emocurate.generators.parse.ParseError` counts as a malformed attempt and is
retried but never cached; any other exception is a bug: no further request is sent, the
answers in flight are booked, and the exception is raised); append the good completion to the
cache before reporting it done.

Money: every request is booked in the ledger at its worst case *before* it is sent and settled
with its real cost when the answer arrives (:class:`~emocurate.generators.ledger.Ledger`), so a
kill at any point leaves the ledger at or above what the provider billed. On Ctrl-C/SIGTERM no
further request is sent, the answers in flight are awaited for ``interrupt_grace_s`` (a second
signal stops at once) and booked; :attr:`Engine.interrupted` names the signal.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from emocurate.errors import BackendError, Interrupted
from emocurate.generators.backends.base import Backend, CallError, ChatRequest, Completion
from emocurate.generators.cache import ResponseCache
from emocurate.generators.ledger import CacheSplit, EngineStats, Ledger, RequestResult
from emocurate.generators.limits import RateLimiter
from emocurate.generators.parse import ParseError
from emocurate.generators.pricing import Price, estimate_input_tokens
from emocurate.generators.progress import ProgressBar
from emocurate.generators.retry import RetryPolicy
from emocurate.records import Model, utc_now
from emocurate.redact import redact_text

__all__ = ["Engine", "EngineConfig", "EngineStats", "MalformedOutput", "RequestResult"]


class MalformedOutput(ParseError):
    """Raised by a ``check`` callback: the completion cannot be parsed into records.

    Only :class:`~emocurate.generators.parse.ParseError` (of which this is one) counts as
    malformed output and is retried; any other exception from ``check`` is a bug and surfaces.
    """


TIMEOUT_MARGIN = 3.0
"""A call may take this many times its expected time before it counts as timed out."""

CONNECT_FAILURES = ("ConnectError", "ConnectTimeout")
"""Causes meaning no connection was ever made (refused, unknown host): the server is absent."""


def never_connected(exc: CallError) -> bool:
    """Whether a connection error means the server could not be reached at all.

    Before the run's first success, two such errors in a row stop the run with one line (a
    wrong ``--base-url`` should not back off for minutes). A connection that was made and then
    dropped or reset (``ReadError``, ``RemoteProtocolError``) is a transient fault like a 503
    and is retried up to ``max_retries``, also before the first success.
    """
    return exc.kind == "connection" and exc.message.startswith(CONNECT_FAILURES)


def reseeded(request: ChatRequest, attempt: int) -> ChatRequest:
    """The request to send after ``attempt`` malformed answers.

    A seeded sampler (the local transformers backend) would return the same malformed text
    forever, so retries after malformed output move the seed deterministically. The accepted
    answer is still cached under the original request's key, so reruns stay free and identical.
    """
    if request.seed is None:
        return request
    return request.model_copy(update={"seed": request.seed + 7919 * attempt})


class EngineConfig(Model):
    """How hard and how long the engine may push a backend."""

    concurrency: int = Field(default=8, ge=1, description="requests in flight at once")
    rpm: float | None = Field(default=None, gt=0, description="requests per minute (client-side)")
    input_tpm: float | None = Field(default=None, gt=0, description="input tokens per minute")
    output_tpm: float | None = Field(default=None, gt=0, description="output tokens per minute")
    max_retries: int = Field(default=6, ge=0, description="retries per request after the first try")
    timeout_s: float = Field(default=120.0, gt=0, description="per-call timeout")
    budget_usd: float | None = Field(
        default=None,
        ge=0,
        description="total USD (with the engine's spend_path: for the folder, across runs)",
    )
    prices: dict[str, Price] = Field(default_factory=dict, description="price overrides by model")
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    burst_s: float = Field(default=1.0, gt=0, description="token-bucket burst, in seconds of limit")
    warm_prompt_cache: bool = Field(default=True, description="send one request before fanning out")
    interrupt_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="after Ctrl-C/SIGTERM, how long to wait for the answers in flight (a second "
        "signal stops at once); answers not back by then stay booked at their worst case",
    )
    batch_pricing: bool = False


Check = Callable[[ChatRequest, Completion], Any]
Deliver = Callable[[int, RequestResult], None]
"""Hands the result of request ``i`` to every request sharing its cache key."""
T = TypeVar("T")


def check_unique_ids(requests: list[ChatRequest]) -> None:
    """Refuse a run whose requests share a ``custom_id`` (results are mapped back by it).

    Raises:
        ValueError: naming the first repeated id.
    """
    ids = [r.custom_id for r in requests]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"duplicate custom_id '{dup}' in one run")


def run_blocking(backend: Backend, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` to the end from synchronous code, then close ``backend``.

    The backend's clients belong to the event loop they were made in, so it is closed inside
    that loop. When the caller already runs an event loop (a notebook, an async app), the
    coroutine gets a fresh loop on a worker thread and its exception is re-raised here.
    """

    async def main() -> T:
        try:
            return await make()
        finally:
            await backend.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            box["exc"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "exc" in box:
        raise box["exc"]
    out: T = box["out"]
    return out


class Engine:
    """Runs many :class:`ChatRequest` s through one backend, safely and within limits.

    Args:
        backend: where requests go.
        config: concurrency, limits, retries, budget and prices.
        cache: the response cache.
        progress: show a progress bar (on a terminal).
        spend_path: the output folder's spend file (makes ``budget_usd`` a total across runs).
    """

    def __init__(
        self,
        backend: Backend,
        config: EngineConfig | None = None,
        cache: ResponseCache | None = None,
        progress: bool = True,
        *,
        spend_path: str | Path | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        self.progress = progress
        c = self.config
        self.ledger = Ledger(
            backend=backend.name,
            model=backend.model or "",
            base_url=backend.base_url,
            cache=cache,
            prices=c.prices,
            budget_usd=c.budget_usd,
            batch_pricing=c.batch_pricing,
            spend_path=spend_path,
        )
        self.retry = RetryPolicy(
            c.max_retries, backoff_base_s=c.backoff_base_s, backoff_max_s=c.backoff_max_s
        )
        """When and how often to retry (shared with the batch runner)."""
        self._ever_ok = False
        self._fatal: BaseException | None = None
        self._s_per_token: float | None = None  # measured call seconds per output token (EMA)
        self._warming = False
        self.interrupted: str | None = None
        """The name of the signal (SIGINT, SIGTERM) that stopped the last run, if any."""
        self.return_on_interrupt = False
        """After an interrupt, return the results (unsent requests skipped) for the caller to
        write, instead of raising :class:`~emocurate.errors.Interrupted` (the default, so a
        caller that does not look at :attr:`interrupted` never takes a stop for failures)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_event: asyncio.Event | None = None
        self._grace: asyncio.TimerHandle | None = None

    def call_timeout(self, request: ChatRequest) -> float:
        """The timeout of one call: ``timeout_s``, raised to :data:`TIMEOUT_MARGIN` times the
        call's expected time when that is longer.

        The expected time is the larger of the backend's own estimate (a local model: its
        measured step time x the request's max tokens x the batches ahead) and the request's
        max tokens at the speed calls have measured so far (seconds per output token, queueing
        included). A fixed timeout cut every call on a CPU model (all requests time out
        together); a scaled one still ends a call that hangs.
        """
        base = self.config.timeout_s
        guesses = [self.backend.expected_seconds(request)]
        if self._s_per_token is not None:
            guesses.append(self._s_per_token * request.max_tokens)
        known = [g for g in guesses if g is not None]
        return max(base, TIMEOUT_MARGIN * max(known)) if known else base

    def _measure_speed(self, seconds: float, completion: Completion) -> None:
        spt = seconds / max(1, completion.output_tokens)
        old = self._s_per_token
        self._s_per_token = spt if old is None else 0.7 * old + 0.3 * spt

    # -- public -------------------------------------------------------------------------------
    @property
    def cache(self) -> ResponseCache | None:
        """The response cache (owned by the ledger)."""
        return self.ledger.cache

    @property
    def stats(self) -> EngineStats:
        """Counts, tokens and USD of this engine's runs (kept by the ledger)."""
        return self.ledger.stats

    @property
    def price(self) -> Price:
        """The price of the backend's model."""
        return self.ledger.price

    def price_for(self, request: ChatRequest) -> Price:
        """The price that applies to ``request``'s model."""
        return self.ledger.price_for(request)

    def estimate(self, requests: list[ChatRequest]) -> float:
        """Worst-case USD for sending ``requests`` (prompt caching assumed after the first)."""
        cached = self.backend.supports_prompt_cache
        return sum(
            self.ledger.worst_case(r, cached_system=cached and r.cache_system and i > 0)
            for i, r in enumerate(requests)
        )

    def cost(self, request: ChatRequest, completion: Completion) -> float:
        """USD billed for one completion."""
        return self.ledger.cost(request, completion)

    def run_sync(
        self, requests: list[ChatRequest], check: Check | None = None
    ) -> list[RequestResult]:
        """:meth:`run` from synchronous code (also works when an event loop is already running)."""
        return run_blocking(self.backend, lambda: self.run(requests, check=check))

    async def run(
        self, requests: list[ChatRequest], check: Check | None = None
    ) -> list[RequestResult]:
        """Run every request; results come back in the same order.

        Raises:
            BudgetExceeded: the budget cannot pay for even one of the requests to send.
            BackendError: a fatal backend problem (bad key, unknown model, unreachable server).
        """
        check_unique_ids(requests)
        t0 = time.monotonic()
        split = self.ledger.split(requests)
        results: list[RequestResult | None] = [split.cached.get(i) for i in range(len(requests))]
        firsts = [idxs[0] for idxs in split.todo.values()]
        self.ledger.check_floor([requests[i] for i in firsts])
        self.stats.rate_limits = dict(self._limiter_limits())
        with self.progress_bar(len(requests)) as bar:
            bar.advance(self.stats.done)

            def deliver(i: int, res: RequestResult) -> None:
                """Hand the answer of request ``i`` to every request with its key."""
                for j in split.todo[split.keys[i]]:
                    results[j] = res.model_copy(update={"custom_id": requests[j].custom_id})
                    self.ledger.count(res)
                    bar.advance(1)

            with self._signals_stop_sending():
                pending = await self._warm_up(requests, split, firsts, check, deliver)
                await self._fan_out(requests, split, pending, check, deliver, bar)
        self.ledger.end_run(time.monotonic() - t0)
        if self._fatal is not None:
            raise self._fatal
        if self.interrupted is not None and not self.return_on_interrupt:
            signum = int(getattr(signal, self.interrupted))
            raise Interrupted(
                f"interrupted ({self.interrupted}): answers in flight were booked; rerun the "
                "same command to resume (answered requests are cached)",
                signum=signum,
            )
        for i, r in enumerate(results):
            if r is None:  # still in flight when an interrupt's grace period ended
                results[i] = RequestResult(
                    custom_id=requests[i].custom_id,
                    skipped=True,
                    error="not finished: interrupted (booked at its worst case)",
                )
                self.stats.skipped += 1
        return [r for r in results if r is not None]

    async def _warm_up(
        self,
        requests: list[ChatRequest],
        split: CacheSplit,
        firsts: list[int],
        check: Check | None,
        deliver: Deliver,
    ) -> list[int]:
        """Send one request first to warm the provider's prompt cache (when it has one and the
        requests share a cached system prompt); returns the requests still to send.

        The first request is retried like any other; if it still fails (resets at start), it
        is sent again with the rest instead of failing the run.
        """
        pending = list(firsts)
        if not (
            pending
            and self.config.warm_prompt_cache
            and self.backend.supports_prompt_cache
            and requests[pending[0]].cache_system
            and requests[pending[0]].system
        ):
            return pending
        first = pending[0]
        self._warming = True
        try:
            res = await self._one(requests[first], split.keys[first], check)
        finally:
            self._warming = False
        if res.ok or res.skipped or self._fatal is not None:
            pending.pop(0)
            deliver(first, res)
        else:
            self.stats.retries += 1
        return pending

    async def _fan_out(
        self,
        requests: list[ChatRequest],
        split: CacheSplit,
        pending: list[int],
        check: Check | None,
        deliver: Deliver,
        bar: ProgressBar,
    ) -> None:
        """Send ``pending`` with at most ``concurrency`` in flight (cancelled on a second signal
        or when an interrupt's grace period ends)."""
        sem = asyncio.Semaphore(self.config.concurrency)

        async def one(i: int) -> None:
            async with sem:
                res = await self._one(requests[i], split.keys[i], check)
            deliver(i, res)
            bar.refresh_stats(self.stats)

        self._tasks = [asyncio.create_task(one(i)) for i in pending]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for t in self._tasks:
                t.cancel()
            self._tasks = []

    # -- interrupts ---------------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        """First Ctrl-C/SIGTERM: stop sending, give the answers in flight a bounded time;
        a second one: stop waiting now."""
        if self.interrupted is None:
            self.interrupted = signal.Signals(signum).name
            grace = self.config.interrupt_grace_s
            self._grace = asyncio.get_running_loop().call_later(grace, self._cancel_in_flight)
            if self._stop_event is not None:
                self._stop_event.set()  # requests waiting to retry give up now
            self.ledger.stopping = True
            self.ledger.release(0.0)  # wake requests waiting for budget room: they give up
        else:
            self._cancel_in_flight()

    def _cancel_in_flight(self) -> None:
        for t in self._tasks:
            t.cancel()

    def _signals_stop_sending(self) -> Any:
        """While the block runs, SIGINT/SIGTERM stop the run gracefully (main thread only:
        asyncio can only hook signals there); the previous handlers are restored after."""

        @contextmanager
        def hooked() -> Any:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            sigs = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.getsignal(sig) for sig in sigs}
            for sig in sigs:
                loop.add_signal_handler(sig, self._on_signal, sig)
            try:
                yield
            finally:
                for sig in sigs:
                    loop.remove_signal_handler(sig)
                    signal.signal(sig, previous[sig])
                if self._grace is not None:
                    self._grace.cancel()
                    self._grace = None
                self._stop_event = None

        return hooked()

    # -- internals ----------------------------------------------------------------------------
    def _limiter_limits(self) -> dict[str, float | None]:
        return self._limiter.describe()

    @property
    def _limiter(self) -> RateLimiter:
        lim = getattr(self, "_lim", None)
        if lim is None:
            c = self.config
            lim = RateLimiter(c.rpm, c.input_tpm, c.output_tpm, burst_s=c.burst_s)
            self._lim = lim
        return lim

    async def _one(self, request: ChatRequest, key: str, check: Check | None) -> RequestResult:
        """One request to its end: admitted (budget, stop, rate limits), sent, checked and
        stored, retried up to ``max_retries`` times; each step is a method below."""
        t = _Attempts(request)
        reserve = self.ledger.worst_case(request)
        est_in = estimate_input_tokens(request)
        while t.attempts <= self.config.max_retries:
            admitted = await self._admit(t, reserve, est_in)
            if isinstance(admitted, RequestResult):
                return admitted
            if admitted is None:  # stopped while it waited: the next turn says why
                continue
            t.attempts += 1
            answer = await self._call(t, reserve, admitted)
            if isinstance(answer, RequestResult):
                return answer
            if answer is None:  # failed, retryable: waited already
                continue
            done = self._checked(t, key, check, *answer)
            if done is not None:
                return done
        return t.failed()

    async def _admit(self, t: _Attempts, reserve: float, est_in: int) -> RequestResult | int | None:
        """Wait for budget room, a ``retry-after`` pause and the rate limits.

        Returns the output tokens taken from the token bucket (go ahead), a skipped result (the
        budget is spent, the run stopped), or None (the run stopped while this request waited:
        whatever it held is given back).
        """
        led = self.ledger
        stop = self._stop_reason()
        if stop is not None:
            return t.result(error=stop, skipped=True)
        if not await led.reserve(reserve):
            stop = self._stop_reason()
            if stop is not None:
                return t.result(error=stop, skipped=True)
            budget = self.config.budget_usd or 0
            return t.result(skipped=True, error=f"not run: budget of ${budget:.4f} reached")
        if self._stop_reason() is not None:
            led.release(reserve)
            return None
        wait = self.retry.pause_left()
        if wait > 0:
            await self._sleep(wait)
        try:
            out_reserved = await self._limiter.acquire(est_in, t.request.max_tokens)
        except BaseException:
            led.release(reserve)
            raise
        if self._stop_reason() is not None:
            led.release(reserve)
            self._limiter.settle(out_reserved, 0)
            return None
        return out_reserved

    async def _call(
        self, t: _Attempts, reserve: float, out_reserved: int
    ) -> tuple[Completion, float] | RequestResult | None:
        """One attempt, booked in the ledger at its worst case before it is sent.

        Returns the completion and its billed USD, a final result (a fatal or non-retryable
        error), or None (a retryable failure, after its backoff).
        """
        led = self.ledger
        timeout = self.call_timeout(t.sent)
        started = time.monotonic()
        entry = led.begin(reserve)  # booked at its worst case before it is sent
        try:
            completion = await asyncio.wait_for(
                self.backend.complete(t.sent), timeout=timeout + 5.0
            )
        except CallError as exc:
            if exc.status is not None or never_connected(exc):
                led.void(entry)  # an error status or no connection: nothing was billed
            else:
                led.abandon(entry)  # lost in transit: the provider may have billed it
            led.release(reserve)
            self._limiter.settle(out_reserved, 0)
            return await self._call_failed(t, exc)
        except TimeoutError:
            led.abandon(entry)
            led.release(reserve)
            self._limiter.settle(out_reserved, 0)
            t.last_error = f"timeout: no answer within {timeout:.0f}s"
            led.note_error("timeout")
            if t.attempts <= self.config.max_retries:
                self.stats.retries += 1
                await self._sleep(self.retry.delay(t.attempts, None))
            return None
        except BaseException:  # cancelled (an interrupt's grace ended) or a bug below us
            led.abandon(entry)
            led.release(reserve)
            self._limiter.settle(out_reserved, 0)
            raise
        return self._settled(t, entry, reserve, out_reserved, completion, started)

    async def _call_failed(self, t: _Attempts, exc: CallError) -> RequestResult | None:
        """Classify a failed attempt: a final result (fatal, not retryable) or None after the
        backoff. Connection errors before any success may stop the whole run (one line)."""
        cfg = self.config
        t.last_error = f"{exc.kind}: {redact_text(exc.message)}"
        self.ledger.note_error(exc.kind)
        if exc.rate_limits:
            self._limiter.seed(exc.rate_limits)
        if exc.fatal or (
            exc.kind == "connection"
            and not self._ever_ok
            and self.backend.base_url
            and (
                (never_connected(exc) and t.attempts >= 2)
                or (t.attempts > cfg.max_retries and not self._warming)
            )
        ):
            if self._fatal is None:
                self._fatal = BackendError(self._fatal_message(exc, t.attempts))
            return t.result(error=t.last_error)
        if not exc.retryable:
            return t.failed()
        if t.attempts <= cfg.max_retries:
            self.stats.retries += 1
            await self._sleep(self.retry.delay(t.attempts, exc.retry_after))
        return None

    def _fatal_message(self, exc: CallError, attempts: int) -> str:
        """The one line a fatal error stops the run with (credentials in URLs masked)."""
        if exc.kind != "connection":
            return redact_text(exc.message)
        where = f" {redact_text(self.backend.base_url or '')}"
        return redact_text(f"cannot reach{where} after {attempts} attempt(s): {exc.message}")

    def _settled(
        self,
        t: _Attempts,
        entry: str,
        reserve: float,
        out_reserved: int,
        completion: Completion,
        started: float,
    ) -> tuple[Completion, float]:
        """Book an answer: its speed, its real output tokens and its real cost."""
        self._ever_ok = True
        self._measure_speed(time.monotonic() - started, completion)
        if not completion.created:
            completion = completion.model_copy(update={"created": utc_now()})
        self._limiter.settle(
            out_reserved, completion.output_tokens, max_tokens=t.request.max_tokens
        )
        if completion.rate_limits:
            self._limiter.seed(completion.rate_limits)
            self.stats.rate_limits = dict(self._limiter_limits())
        usd = self.ledger.settle(entry, completion, self.cost(t.request, completion))
        self.ledger.release(reserve)
        return completion, usd

    def _checked(
        self, t: _Attempts, key: str, check: Check | None, completion: Completion, usd: float
    ) -> RequestResult | None:
        """Run the caller's ``check`` and cache a good answer; None: malformed, try again
        (with a moved seed). Any other exception from ``check`` is a bug: it stops the run."""
        request = t.request
        if check is not None:
            try:
                check(request, completion)
            except ParseError as exc:
                t.last_error = self.ledger.malformed(exc)
                if t.attempts <= self.config.max_retries:
                    self.stats.retries += 1
                t.sent = reseeded(request, t.attempts)
                return None
            except Exception as exc:  # a bug in our code, not a bad answer: stop the run
                if self._fatal is None:
                    self._fatal = exc
                return t.result(error=f"internal error: {type(exc).__name__}")
        self.ledger.store(key, completion, request.custom_id)
        return t.result(completion=completion, cost_usd=usd)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a backoff), or less when an interrupt stops the run."""
        event = self._stop_event
        if event is None:
            await asyncio.sleep(seconds)
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)

    def _stop_reason(self) -> str | None:
        """Why no further request may be sent (None: go on)."""
        if self._fatal is not None:
            return "not run: run aborted"
        if self.interrupted is not None:
            return f"not run: interrupted ({self.interrupted})"
        return None

    def progress_bar(self, total: int) -> ProgressBar:
        """The progress bar of a run of ``total`` requests (quiet unless :attr:`progress`)."""
        return ProgressBar(
            total, enabled=self.progress, label=f"{self.backend.name}:{self.backend.model}"
        )


@dataclass
class _Attempts:
    """One request's state across its attempts (what :meth:`Engine._one`'s steps share)."""

    request: ChatRequest
    attempts: int = 0
    last_error: str = "not attempted"
    sent: ChatRequest = field(init=False)
    """What the next attempt sends (the request, its seed moved after malformed answers)."""

    def __post_init__(self) -> None:
        self.sent = self.request

    def result(self, **fields: Any) -> RequestResult:
        """This request's result with its attempts so far."""
        return RequestResult(custom_id=self.request.custom_id, attempts=self.attempts, **fields)

    def failed(self) -> RequestResult:
        """The result of a request whose attempts are used up (or not retryable)."""
        return self.result(error=f"failed after {self.attempts} attempt(s): {self.last_error}")
