"""Backends behind one API, and :func:`make_backend` to build one by name.

Keys come from the SDKs' usual environment variables (``ANTHROPIC_API_KEY``,
``OPENAI_API_KEY``) and base URLs from ``base_url`` or the SDKs' variables
(``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``). SDK clients are built with ``max_retries=0``:
the engine is the only place that retries.
"""

from __future__ import annotations

from typing import Any

from emocurate.errors import BackendError
from emocurate.generators.backends.base import (
    Backend,
    CallError,
    ChatRequest,
    Completion,
    Message,
)

BACKENDS = ("anthropic", "openai", "transformers", "fake")

__all__ = [
    "BACKENDS",
    "Backend",
    "CallError",
    "ChatRequest",
    "Completion",
    "Message",
    "make_backend",
]


def make_backend(name: str, model: str, *, base_url: str | None = None, **kw: Any) -> Backend:
    """Build a backend by name: ``anthropic``, ``openai``, ``transformers`` or ``fake``.

    Raises:
        BackendError: unknown name, or a hosted backend without its API key.
    """
    key = name.strip().lower()
    if key == "anthropic":
        from emocurate.generators.backends.anthropic_backend import AnthropicBackend

        return AnthropicBackend(model, base_url=base_url, **kw)
    if key == "openai":
        from emocurate.generators.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(model, base_url=base_url, **kw)
    if key == "transformers":
        from emocurate.generators.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, **kw)
    if key == "fake":
        from emocurate.generators.backends.fake import FakeBackend

        return FakeBackend(model, **kw)
    raise BackendError(f"unknown backend '{name}' (choose one of: {', '.join(BACKENDS)})")
