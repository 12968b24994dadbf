"""Client-side token buckets for requests/min, input tokens/min and output tokens/min.

Providers meter all three; staying under them on the client avoids the 429 storms that cost a
long backoff. Each bucket refills continuously at ``limit/60`` per second, holds at most
``burst_s`` seconds' worth (its *capacity*, one second by default) and starts empty.

What that guarantees, exactly (:meth:`TokenBucket.max_in_window`): over any window of ``W``
seconds a bucket admits at most ``limit*W/60 + capacity`` (the capacity is the burst a bucket
saved up while idle; a window that starts with the run gets no burst, as the bucket starts
empty), plus the excess of one request that alone needs more than a full bucket (it is
admitted at a full bucket and leaves the bucket in debt, repaid before anything else is
admitted). So one minute carries at most ``limit * (1 + burst_s/60)``. It is not true that no
short window ever exceeds ``limit/60`` per second: after an idle second, one second can carry
twice that.

Output tokens are not known until an answer arrives. Reserving ``max_tokens`` for every
request in flight throttles a run whose answers use a fraction of it to that fraction of the
limit, so the output bucket reserves an *estimate*: ``max_tokens`` until answers have arrived,
then the highest used/``max_tokens`` ratio among the recent answers (times ``max_tokens``).
When an answer arrives the difference between its estimate and the tokens it used is settled:
unused tokens are returned (up to the capacity), an answer that used more than its estimate
puts the bucket in debt, which delays the next requests. Over time the output admitted equals
the output used, so a run achieves its ``--output-tpm``; a window may exceed the bound above
by at most the estimate shortfall of the requests in flight at once (each at most its
``max_tokens`` minus its estimate). Limits can be (re)seeded from rate-limit response headers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """One continuously refilling bucket; ``limit`` is per minute (None means unlimited)."""

    def __init__(self, limit_per_min: float | None, *, burst_s: float = 1.0) -> None:
        self.burst_s = burst_s
        self.limit: float | None = None
        self.level = 0.0
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()  # waiters queue in order (FIFO fairness)
        self.user_set = limit_per_min is not None
        self.set_limit(limit_per_min)

    @property
    def rate(self) -> float:
        """Refill per second."""
        return (self.limit or 0.0) / 60.0

    @property
    def capacity(self) -> float:
        """Most the bucket holds."""
        return max(1.0, self.rate * self.burst_s)

    def max_in_window(self, window_s: float, *, from_start: bool = False) -> float:
        """The most this bucket admits in any window of ``window_s`` seconds (see the module
        docstring; ``from_start``: a window that starts with the run, when the bucket is empty).
        Excludes the one-request excess of a request larger than the capacity."""
        if self.limit is None:
            return math.inf
        return self.rate * window_s + (0.0 if from_start else self.capacity)

    def set_limit(self, limit_per_min: float | None) -> None:
        """Change the limit (keeps the current level, capped at the new capacity)."""
        self._refill()
        first = self.limit is None
        self.limit = limit_per_min if limit_per_min and limit_per_min > 0 else None
        if self.limit is not None:
            # Start empty: a full bucket at start would let the first minute exceed the limit
            # by one burst (the server counts it; the run would earn 429s).
            self.level = 0.0 if first else min(self.level, self.capacity)

    def _refill(self) -> None:
        now = time.monotonic()
        if self.limit is not None:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float | Callable[[], float]) -> float:
        """Wait until ``amount`` is available and take it; returns the amount taken.

        Amounts above capacity are capped for the wait, so one huge request waits for a full
        bucket instead of forever (and leaves the bucket in debt). ``amount`` may be a
        function, evaluated again each time this request (at the head of the queue) is
        woken, so an estimate uses everything learnt while it waited.
        """
        if self.limit is None:
            return amount() if callable(amount) else amount
        async with self._lock:
            while True:
                take = amount() if callable(amount) else amount
                if take <= 0:
                    return take
                self._refill()
                need = min(take, self.capacity)
                if self.level >= need - 1e-9:
                    self.level -= take
                    return take
                await asyncio.sleep((need - self.level) / self.rate)

    def settle(self, delta: float) -> None:
        """Correct an earlier reservation: ``delta > 0`` returns unused amount (up to the
        capacity), ``delta < 0`` takes more (the bucket may go into debt)."""
        if self.limit is None or delta == 0:
            return
        self._refill()
        self.level = min(self.capacity, self.level + delta)

    def refund(self, amount: float) -> None:
        """Give back an unused reservation."""
        if amount > 0:
            self.settle(amount)


class OutputEstimate:
    """What share of ``max_tokens`` answers use: the highest ratio among the recent answers."""

    def __init__(self, window: int = 32) -> None:
        self._ratios: deque[float] = deque(maxlen=window)

    def observe(self, max_tokens: int, used: int) -> None:
        """Record one answer's usage."""
        if max_tokens > 0:
            self._ratios.append(min(1.0, max(0.0, used / max_tokens)))

    def reserve(self, max_tokens: int) -> int:
        """Tokens to reserve for a request with ``max_tokens`` (all of it until answers arrive)."""
        if not self._ratios:
            return max_tokens
        return max(1, min(max_tokens, math.ceil(max(self._ratios) * max_tokens)))


class RateLimiter:
    """The three buckets together, plus header seeding for the ones the user left unset."""

    KEYS = ("rpm", "input_tpm", "output_tpm")

    def __init__(
        self,
        rpm: float | None = None,
        input_tpm: float | None = None,
        output_tpm: float | None = None,
        *,
        burst_s: float = 1.0,
        header_fraction: float = 0.95,
    ) -> None:
        self.buckets = {
            "rpm": TokenBucket(rpm, burst_s=burst_s),
            "input_tpm": TokenBucket(input_tpm, burst_s=burst_s),
            "output_tpm": TokenBucket(output_tpm, burst_s=burst_s),
        }
        self.header_fraction = header_fraction
        self.output = OutputEstimate()

    async def acquire(self, input_tokens: int, output_tokens: int) -> int:
        """Reserve one request and its tokens; returns the output tokens reserved (pass it to
        :meth:`settle`), an estimate no larger than ``output_tokens`` (``max_tokens``)."""
        await self.buckets["rpm"].acquire(1)
        await self.buckets["input_tpm"].acquire(input_tokens)
        taken = await self.buckets["output_tpm"].acquire(lambda: self.output.reserve(output_tokens))
        return int(taken)

    def settle(self, reserved_output: int, used_output: int, *, max_tokens: int = 0) -> None:
        """True up the output reservation with the tokens used (none for a failed call).

        ``max_tokens``: the request's limit; when given, the answer's share of it refines the
        estimate reserved for later requests.
        """
        if max_tokens:
            self.output.observe(max_tokens, used_output)
        self.buckets["output_tpm"].settle(reserved_output - used_output)

    def seed(self, limits: dict[str, float]) -> None:
        """Adopt limits announced in response headers for buckets the user did not set."""
        for key in self.KEYS:
            value = limits.get(key)
            bucket = self.buckets[key]
            if value and not bucket.user_set:
                target = value * self.header_fraction
                if bucket.limit is None or abs(bucket.limit - target) > 1e-6:
                    bucket.set_limit(target)

    def describe(self) -> dict[str, float | None]:
        """Current limits (for the manifest)."""
        return {k: b.limit for k, b in self.buckets.items()}
