"""Client-side token buckets for requests/min, input tokens/min and output tokens/min.

Providers meter all three; staying under them on the client avoids the 429 storms that cost a
long backoff. Each bucket refills continuously at ``limit/60`` per second and holds at most
``burst_s`` seconds' worth (one second by default) and starts empty, so no window of the run
exceeds the limit even briefly. Output tokens are reserved at ``max_tokens`` and the unused part is
returned when the call finishes. Limits can be (re)seeded from rate-limit response headers.
"""

from __future__ import annotations

import asyncio
import time


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

    async def acquire(self, amount: float) -> None:
        """Wait until ``amount`` is available and take it (amounts above capacity are capped,
        so one huge request waits for a full bucket instead of forever)."""
        if self.limit is None or amount <= 0:
            return
        async with self._lock:
            while True:
                self._refill()
                need = min(amount, self.capacity)
                if self.level >= need:
                    self.level -= amount
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def refund(self, amount: float) -> None:
        """Give back an unused reservation."""
        if self.limit is None or amount <= 0:
            return
        self._refill()
        self.level = min(self.capacity, self.level + amount)


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

    async def acquire(self, input_tokens: int, output_tokens: int) -> None:
        """Reserve one request and its estimated tokens."""
        await self.buckets["rpm"].acquire(1)
        await self.buckets["input_tpm"].acquire(input_tokens)
        await self.buckets["output_tpm"].acquire(output_tokens)

    def settle(self, reserved_output: int, used_output: int) -> None:
        """Return output tokens reserved but not used."""
        self.buckets["output_tpm"].refund(reserved_output - used_output)

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
