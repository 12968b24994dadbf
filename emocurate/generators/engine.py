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
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from emocurate.errors import BackendError, Interrupted
from emocurate.generators.backends.base import Backend, CallError, ChatRequest, Completion
from emocurate.generators.cache import ResponseCache
from emocurate.generators.ledger import EngineStats, Ledger
from emocurate.generators.limits import RateLimiter
from emocurate.generators.parse import ParseError
from emocurate.generators.pricing import Price, estimate_input_tokens
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


class RequestResult(Model):
    """What became of one request (same order as the requests given to :meth:`Engine.run`)."""

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


Check = Callable[[ChatRequest, Completion], Any]
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
        self._errors: Counter[str] = Counter()
        self._ever_ok = False
        self._pause_until = 0.0
        self._fatal: BaseException | None = None
        self._rng = random.Random()
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
        led = self.ledger
        keys = [led.key(r) for r in requests]
        results: list[RequestResult | None] = [None] * len(requests)
        self.stats.planned += len(requests)
        todo: dict[str, list[int]] = {}
        for i, (req, key) in enumerate(zip(requests, keys, strict=True)):
            hit = led.lookup(key)
            if hit is not None:
                results[i] = RequestResult(
                    custom_id=req.custom_id,
                    completion=hit,
                    cached=True,
                    cost_usd=self.cost(req, hit),
                )
                self.stats.cached += 1
                self.stats.done += 1
            else:
                todo.setdefault(key, []).append(i)
        firsts = [idxs[0] for idxs in todo.values()]
        led.check_floor([requests[i] for i in firsts])
        self.stats.rate_limits = dict(self._limiter_limits())
        with self._progress_bar(len(requests)) as bar:
            bar.advance(self.stats.done)
            sem = asyncio.Semaphore(self.config.concurrency)

            async def one(i: int) -> None:
                async with sem:
                    res = await self._one(requests[i], keys[i], check)
                for j in todo[keys[i]]:
                    results[j] = res.model_copy(update={"custom_id": requests[j].custom_id})
                    self._count(res)
                    bar.advance(1)
                bar.refresh_stats(self.stats)

            pending = list(firsts)
            with self._signals_stop_sending():
                if (
                    pending
                    and self.config.warm_prompt_cache
                    and self.backend.supports_prompt_cache
                    and requests[pending[0]].cache_system
                    and requests[pending[0]].system
                ):
                    # One request first warms the provider's prompt cache. It is retried like
                    # any other; if it still fails (resets at start), it is sent again with
                    # the rest instead of failing the run.
                    first = pending[0]
                    self._warming = True
                    try:
                        res = await self._one(requests[first], keys[first], check)
                    finally:
                        self._warming = False
                    if res.ok or res.skipped or self._fatal is not None:
                        pending.pop(0)
                        for j in todo[keys[first]]:
                            results[j] = res.model_copy(update={"custom_id": requests[j].custom_id})
                            self._count(res)
                            bar.advance(1)
                    else:
                        self.stats.retries += 1
                self._tasks = [asyncio.create_task(one(i)) for i in pending]
                try:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                finally:
                    for t in self._tasks:
                        t.cancel()
                    self._tasks = []
        self.stats.elapsed_s += time.monotonic() - t0
        self.stats.errors = dict(self._errors)
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

    def _count(self, res: RequestResult) -> None:
        if res.skipped:
            self.stats.skipped += 1
        elif res.error is not None:
            self.stats.failed += 1
        else:
            self.stats.done += 1

    def _record_usage(self, c: Completion, usd: float) -> float:
        """Count one billed call (its tokens and ``usd``) in the ledger; returns ``usd``."""
        return self.ledger.charge(c, usd)

    async def _one(self, request: ChatRequest, key: str, check: Check | None) -> RequestResult:
        cfg = self.config
        led = self.ledger
        est_in = estimate_input_tokens(request)
        reserve = led.worst_case(request)
        last_error = "not attempted"
        attempts = 0
        sent = request
        while attempts <= cfg.max_retries:
            stop = self._stop_reason()
            if stop is not None:
                return RequestResult(
                    custom_id=request.custom_id, error=stop, skipped=True, attempts=attempts
                )
            if not await led.reserve(reserve):
                stop = self._stop_reason()
                if stop is not None:
                    return RequestResult(
                        custom_id=request.custom_id, error=stop, skipped=True, attempts=attempts
                    )
                return RequestResult(
                    custom_id=request.custom_id,
                    skipped=True,
                    attempts=attempts,
                    error=f"not run: budget of ${cfg.budget_usd or 0:.4f} reached",
                )
            if self._stop_reason() is not None:
                led.release(reserve)
                continue
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await self._sleep(wait)
            try:
                out_reserved = await self._limiter.acquire(est_in, request.max_tokens)
            except BaseException:
                led.release(reserve)
                raise
            if self._stop_reason() is not None:
                led.release(reserve)
                self._limiter.settle(out_reserved, 0)
                continue
            attempts += 1
            timeout = self.call_timeout(sent)
            started = time.monotonic()
            entry = led.begin(reserve)  # booked at its worst case before it is sent
            try:
                completion = await asyncio.wait_for(
                    self.backend.complete(sent), timeout=timeout + 5.0
                )
            except CallError as exc:
                if exc.status is not None or never_connected(exc):
                    led.void(entry)  # an error status or no connection: nothing was billed
                else:
                    led.abandon(entry)  # lost in transit: the provider may have billed it
                led.release(reserve)
                self._limiter.settle(out_reserved, 0)
                last_error = f"{exc.kind}: {redact_text(exc.message)}"
                self._errors[exc.kind] += 1
                if exc.rate_limits:
                    self._limiter.seed(exc.rate_limits)
                if exc.fatal or (
                    exc.kind == "connection"
                    and not self._ever_ok
                    and self.backend.base_url
                    and (
                        (never_connected(exc) and attempts >= 2)
                        or (attempts > cfg.max_retries and not self._warming)
                    )
                ):
                    if self._fatal is None:
                        where = (
                            f" {redact_text(self.backend.base_url or '')}"
                            if exc.kind == "connection"
                            else ""
                        )
                        msg = redact_text(
                            f"cannot reach{where} after {attempts} attempt(s): {exc.message}"
                            if exc.kind == "connection"
                            else exc.message
                        )
                        self._fatal = BackendError(msg)
                    return RequestResult(
                        custom_id=request.custom_id, error=last_error, attempts=attempts
                    )
                if not exc.retryable:
                    break
                if attempts <= cfg.max_retries:
                    self.stats.retries += 1
                    await self._sleep(self._delay(attempts, exc.retry_after))
                continue
            except TimeoutError:
                led.abandon(entry)
                led.release(reserve)
                self._limiter.settle(out_reserved, 0)
                last_error = f"timeout: no answer within {timeout:.0f}s"
                self._errors["timeout"] += 1
                if attempts <= cfg.max_retries:
                    self.stats.retries += 1
                    await self._sleep(self._delay(attempts, None))
                continue
            except BaseException:  # cancelled (an interrupt's grace ended) or a bug below us
                led.abandon(entry)
                led.release(reserve)
                self._limiter.settle(out_reserved, 0)
                raise
            self._ever_ok = True
            self._measure_speed(time.monotonic() - started, completion)
            if not completion.created:
                completion = completion.model_copy(update={"created": utc_now()})
            self._limiter.settle(
                out_reserved, completion.output_tokens, max_tokens=request.max_tokens
            )
            if completion.rate_limits:
                self._limiter.seed(completion.rate_limits)
                self.stats.rate_limits = dict(self._limiter_limits())
            usd = led.settle(entry, completion, self.cost(request, completion))
            led.release(reserve)
            if check is not None:
                try:
                    check(request, completion)
                except ParseError as exc:
                    last_error = self._malformed(exc)
                    if attempts <= cfg.max_retries:
                        self.stats.retries += 1
                    sent = reseeded(request, attempts)
                    continue
                except Exception as exc:  # a bug in our code, not a bad answer: stop the run
                    if self._fatal is None:
                        self._fatal = exc
                    return RequestResult(
                        custom_id=request.custom_id,
                        error=f"internal error: {type(exc).__name__}",
                        attempts=attempts,
                    )
            led.store(key, completion, request.custom_id)
            return RequestResult(
                custom_id=request.custom_id, completion=completion, attempts=attempts, cost_usd=usd
            )
        return RequestResult(
            custom_id=request.custom_id,
            attempts=attempts,
            error=f"failed after {attempts} attempt(s): {last_error}",
        )

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

    def _malformed(self, exc: Exception) -> str:
        """Count a completion that failed the caller's ``check``; returns the error to report."""
        self._errors["malformed"] += 1
        self.stats.malformed += 1
        return f"malformed: {str(exc).splitlines()[0] if str(exc) else 'unparseable'}"

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.config
        if retry_after is not None and retry_after >= 0:
            delay = retry_after + self._rng.uniform(0, 0.1 * retry_after + 0.01)
            self._pause_until = max(self._pause_until, time.monotonic() + retry_after)
            return min(delay, max(cfg.backoff_max_s, retry_after))
        cap = min(cfg.backoff_max_s, cfg.backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0, cap)  # full jitter

    def _progress_bar(self, total: int) -> _Progress:
        return _Progress(
            total, enabled=self.progress, label=f"{self.backend.name}:{self.backend.model}"
        )


class _Progress:
    """A rich progress bar showing done/failed/cached, tokens, USD and rate (quiet off a TTY)."""

    def __init__(self, total: int, *, enabled: bool, label: str) -> None:
        self.total = total
        self.enabled = enabled
        self.label = label
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            self.enabled = False
            return self
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._p.__enter__()
        self._task = self._p.add_task(self.label, total=self.total, stats="")
        return self

    def advance(self, n: int) -> None:
        if self._p is not None and n:
            self._p.advance(self._task, n)

    def refresh_stats(self, s: EngineStats) -> None:
        if self._p is None:
            return
        rate = s.calls / s.elapsed_s * 60 if s.elapsed_s else 0.0
        task = self._p.tasks[0]
        el = task.elapsed or 0.0
        rate = (s.calls / el * 60) if el else rate
        self._p.update(
            self._task,
            stats=(
                f"failed {s.failed} cached {s.cached} tok {s.billed_tokens:,} "
                f"${s.usd_spent:.4f} {rate:.0f} req/min"
            ),
        )

    def note(self, text: str) -> None:
        """Replace the stats text (``--batch`` shows batch status counts here)."""
        if self._p is not None:
            self._p.update(self._task, stats=text)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)
