"""Per-model prices (USD per million tokens), overridable, and the cost of one completion.

Prices change; the table is a starting point that a run can override (``EngineConfig.prices``
or ``--price-input/--price-output``). Models are matched by the longest table key that prefixes
the model name, so dated snapshots (``claude-sonnet-4-5-20250929``) find their family's price.
Local and fake backends cost nothing. Batch APIs bill at half price.
"""

from __future__ import annotations

from emocurate.generators.backends.base import ChatRequest, Completion
from emocurate.records import Model


class Price(Model):
    """USD per million tokens. Cache writes/reads default to Anthropic's 1.25x / 0.1x of input."""

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None
    batch_discount: float = 0.5

    def cost(self, c: Completion, *, batch: bool = False) -> float:
        """USD billed for one completion's usage."""
        cw = self.cache_write if self.cache_write is not None else 1.25 * self.input
        cr = self.cache_read if self.cache_read is not None else 0.1 * self.input
        usd = (
            c.input_tokens * self.input
            + c.output_tokens * self.output
            + c.cache_write_tokens * cw
            + c.cache_read_tokens * cr
        ) / 1e6
        return usd * (self.batch_discount if batch else 1.0)


# Public list prices at the time of writing (USD / 1M tokens). OpenAI's cached-input price
# is given explicitly (OpenAI caches automatically and bills cached input at a discount).
DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(input=5.0, output=25.0),
    "claude-opus-4-1": Price(input=15.0, output=75.0),
    "claude-opus-4": Price(input=15.0, output=75.0),
    "claude-sonnet-4": Price(input=3.0, output=15.0),
    "claude-3-7-sonnet": Price(input=3.0, output=15.0),
    "claude-haiku-4-5": Price(input=1.0, output=5.0),
    "claude-3-5-haiku": Price(input=0.8, output=4.0),
    "claude-3-haiku": Price(input=0.25, output=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cache_write=0.15, cache_read=0.075),
    "gpt-4o": Price(input=2.5, output=10.0, cache_write=2.5, cache_read=1.25),
    "gpt-4.1-nano": Price(input=0.1, output=0.4, cache_write=0.1, cache_read=0.025),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cache_write=0.4, cache_read=0.1),
    "gpt-4.1": Price(input=2.0, output=8.0, cache_write=2.0, cache_read=0.5),
    "gpt-5-nano": Price(input=0.05, output=0.4, cache_write=0.05, cache_read=0.005),
    "gpt-5-mini": Price(input=0.25, output=2.0, cache_write=0.25, cache_read=0.025),
    "gpt-5": Price(input=1.25, output=10.0, cache_write=1.25, cache_read=0.125),
}

FREE_BACKENDS = {"transformers", "fake"}
ZERO = Price(input=0.0, output=0.0, cache_write=0.0, cache_read=0.0)


def find_price(
    backend: str, model: str, overrides: dict[str, Price] | None = None
) -> tuple[Price, bool]:
    """The price for ``model`` and whether it is known (unknown models cost 0, flagged)."""
    table = {**DEFAULT_PRICES, **(overrides or {})}
    if model in table:
        return table[model], True
    if "*" in (overrides or {}):
        return table["*"], True
    if backend in FREE_BACKENDS:
        return ZERO, True
    name = model.split("/")[-1]
    matches = [k for k in table if name.startswith(k)]
    if matches:
        return table[max(matches, key=len)], True
    return ZERO, False


def estimate_input_tokens(request: ChatRequest) -> int:
    """A cheap upper-leaning estimate (about 3.5 characters per token) used before a call."""
    chars = len(request.system) + sum(len(m.content) for m in request.messages)
    if request.schema_:
        chars += len(str(request.schema_))
    return int(chars / 3.5) + 8 * (1 + len(request.messages))


MIN_CACHEABLE_TOKENS = 1024
"""Anthropic caches a marked prefix only from this many tokens on (Sonnet/Opus; Haiku needs
more): a shorter system prompt with a cache marker is billed as plain input."""


def cacheable(system: str) -> bool:
    """Whether a system prompt is long enough to be cached (a lower-leaning estimate,
    about 4 characters per token, so the cost estimate never assumes a cache that won't happen)."""
    return len(system) / 4 >= MIN_CACHEABLE_TOKENS


def estimate_cost(
    request: ChatRequest, price: Price, *, cached_system: bool = False, batch: bool = False
) -> float:
    """Worst-case USD for one request: estimated input, ``max_tokens`` output.

    ``cached_system`` assumes the system prompt is read from the cache, and only when it is long
    enough to be cached at all (:func:`cacheable`); otherwise a prefix marked for caching is
    priced as a cache write (1.25x input at Anthropic), so the worst case stays an upper bound
    of the bill whichever request writes the cache.
    """
    inp = estimate_input_tokens(request)
    can_cache = request.cache_system and cacheable(request.system)
    sys_tokens = int(len(request.system) / 3.5) if can_cache else 0
    if cached_system and can_cache:
        c = Completion(
            input_tokens=inp - sys_tokens,
            output_tokens=request.max_tokens,
            cache_read_tokens=sys_tokens,
        )
    else:  # a marked prefix not yet cached is written to the cache (Anthropic bills 1.25x input)
        c = Completion(
            input_tokens=inp - sys_tokens,
            output_tokens=request.max_tokens,
            cache_write_tokens=sys_tokens,
        )
    return price.cost(c, batch=batch)
