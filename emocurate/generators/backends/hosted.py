"""What the Anthropic and OpenAI backends share: clients per event loop, key checks and SDK
error classification.

Both SDKs raise the same family of exceptions (``APITimeoutError`` < ``APIConnectionError``,
``APIStatusError`` with ``status_code`` and ``response.headers``). They are turned into one
:class:`CallError` so the engine can retry (429/529/5xx/408/409, timeouts, dropped
connections, unreadable bodies), stop the run (401/403/404: a bad key or model concerns every
request) or fail just this request (other 4xx).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from emocurate.errors import BackendError, ConfigError
from emocurate.generators.backends.base import Backend, CallError


def check_base_url(url: str) -> None:
    """Refuse a base URL that cannot work before any request is sent (no retries for minutes).

    Raises:
        ConfigError: not an http(s) URL, no host, or a port outside 1-65535 (one line, the
            URL shown without credentials).
    """
    from urllib.parse import urlsplit

    from emocurate.redact import redact_text

    shown = redact_text(url)
    example = "e.g. http://localhost:8000/v1"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--base-url '{shown}' is not a usable URL ({exc}; {example})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--base-url '{shown}' is not an http(s) URL with a host name ({example})"
        )
    if port == 0:
        raise ConfigError(f"--base-url '{shown}' has port 0 ({example})")


def require_key(env_vars: tuple[str, ...], explicit: str | None, backend: str) -> str:
    """The API key from ``explicit`` or the first set environment variable, else one line."""
    if explicit:
        return explicit
    for var in env_vars:
        value = os.environ.get(var)
        if value:
            return value
    raise BackendError(f"{backend} backend: no API key (set {env_vars[0]} in the environment)")


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (None when absent/odd)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    sec = headers.get("retry-after")
    if sec:
        try:
            return max(0.0, float(sec))
        except ValueError:
            return None
    return None


def _float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


ANTHROPIC_LIMIT_HEADERS = {
    "rpm": "anthropic-ratelimit-requests-limit",
    "input_tpm": "anthropic-ratelimit-input-tokens-limit",
    "output_tpm": "anthropic-ratelimit-output-tokens-limit",
}
OPENAI_LIMIT_HEADERS = {
    "rpm": "x-ratelimit-limit-requests",
    "input_tpm": "x-ratelimit-limit-tokens",
}


def rate_limits(headers: Mapping[str, str] | None, names: dict[str, str]) -> dict[str, float]:
    """Limits announced in response headers, as ``{"rpm": ..., "input_tpm": ...}``."""
    if not headers:
        return {}
    out: dict[str, float] = {}
    for key, header in names.items():
        v = _float(headers, header)
        if v:
            out[key] = v
    return out


def classify(
    exc: Exception, sdk: Any, *, backend: str, base_url: str | None, limit_headers: dict[str, str]
) -> CallError:
    """Map one SDK exception to a :class:`CallError`."""
    if isinstance(exc, sdk.APITimeoutError):
        return CallError("request timed out", kind="timeout", retryable=True)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return CallError(detail.strip() or "connection error", kind="connection", retryable=True)
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        headers = exc.response.headers if getattr(exc, "response", None) is not None else None
        limits = rate_limits(headers, limit_headers)
        msg = _status_message(exc)
        if status == 429:
            return CallError(
                f"429 rate limited: {msg}",
                kind="rate_limited",
                retryable=True,
                status=status,
                retry_after=retry_after(headers),
                rate_limits=limits,
            )
        if status == 529:
            return CallError(
                f"529 overloaded: {msg}",
                kind="overloaded",
                retryable=True,
                status=status,
                retry_after=retry_after(headers),
            )
        if status >= 500 or status in (408, 409):
            return CallError(
                f"{status} server error: {msg}",
                kind="server_error",
                retryable=True,
                status=status,
                retry_after=retry_after(headers),
            )
        if status in (401, 403):
            return CallError(
                f"{backend}: authentication failed ({status}): {msg}",
                kind="auth",
                fatal=True,
                status=status,
            )
        if status == 404:
            where = f" at {base_url}" if base_url else ""
            return CallError(
                f"{backend}: not found{where} ({msg}); check --model and --base-url",
                kind="not_found",
                fatal=True,
                status=status,
            )
        return CallError(f"{status} rejected: {msg}", kind="bad_request", status=status)
    if isinstance(exc, sdk.APIResponseValidationError | ValueError):
        return CallError(f"unreadable response: {exc}", kind="bad_response", retryable=True)
    return CallError(f"{type(exc).__name__}: {exc}", kind="error", retryable=False)


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:200]
    return str(getattr(exc, "message", exc))[:200]


class HostedBackend(Backend):
    """A backend behind an official async SDK (``anthropic`` or ``openai``).

    Subclasses set ``sdk`` (the SDK module), ``sdk_error`` (its base exception class name),
    ``limit_headers`` and, in ``__init__``, ``_make`` (builds a client), ``_fixed`` (a client
    given by the caller, or None) and ``_clients`` (an empty dict).
    """

    sdk: Any
    sdk_error: ClassVar[str] = ""
    limit_headers: ClassVar[dict[str, str]] = {}
    _make: Callable[[], Any]
    _fixed: Any
    _clients: dict[int, Any]

    def client(self) -> Any:
        """The SDK client of the running event loop (connections cannot cross loops)."""
        if self._fixed is not None:
            return self._fixed
        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            self._clients[loop] = self._make()
        return self._clients[loop]

    async def aclose(self) -> None:
        """Close this loop's client (its connection pool) before the loop ends."""
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.close()

    @contextmanager
    def sdk_errors(self, limit_headers: dict[str, str] | None = None) -> Iterator[None]:
        """Turn what the SDK raises in the block (and ValueErrors) into a :class:`CallError`.

        Other exceptions pass through unchanged.

        Args:
            limit_headers: rate-limit headers to read (default: this backend's).
        """
        try:
            yield
        except (getattr(self.sdk, self.sdk_error), ValueError) as exc:
            headers = self.limit_headers if limit_headers is None else limit_headers
            raise classify(
                exc, self.sdk, backend=self.name, base_url=self.base_url, limit_headers=headers
            ) from None
