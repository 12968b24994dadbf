"""The retry policy the engine and the batch runner share: how often, and how long to wait.

Backends make one attempt per call; whoever retries asks this policy how long to wait, so a
``retry-after`` from one call also holds back the calls that follow (:attr:`pause_until`).
"""

from __future__ import annotations

import random
import time


class RetryPolicy:
    """Retries per request and the wait before each: ``retry-after`` when the server sent one,
    otherwise exponential backoff with full jitter.

    Args:
        max_retries: retries per request after the first try.
        backoff_base_s: the first backoff's cap (doubles with each attempt).
        backoff_max_s: the largest backoff (a longer ``retry-after`` is still honoured).
        rng: the jitter's random source.
    """

    def __init__(
        self,
        max_retries: int,
        *,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.rng = rng or random.Random()
        self.pause_until = 0.0
        """``time.monotonic()`` before which no call should start (the latest ``retry-after``)."""

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            delay = retry_after + self.rng.uniform(0, 0.1 * retry_after + 0.01)
            self.pause_until = max(self.pause_until, time.monotonic() + retry_after)
            return min(delay, max(self.backoff_max_s, retry_after))
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self.rng.uniform(0, cap)  # full jitter

    def pause_left(self) -> float:
        """Seconds until the latest ``retry-after`` has passed (0 or less: none pending)."""
        return self.pause_until - time.monotonic()
