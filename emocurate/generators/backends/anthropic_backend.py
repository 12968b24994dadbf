"""Anthropic Messages API backend.

Structured output is one tool whose ``input_schema`` is the request's schema, forced with
``tool_choice={"type": "tool", "name": ...}``; the tool call's input is the answer. The shared
system prompt carries ``cache_control`` so requests after the first read it from the prompt
cache (billed at a tenth of the input price). Usage includes cache reads and writes. The client
is built with ``max_retries=0``: the engine does all retrying.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

from emocurate.generators.backends.base import CallError, ChatRequest, Completion
from emocurate.generators.backends.hosted import (
    ANTHROPIC_LIMIT_HEADERS,
    HostedBackend,
    rate_limits,
    require_key,
)


class AnthropicBackend(HostedBackend):
    """Claude models through the official async SDK."""

    name = "anthropic"
    sdk_error = "AnthropicError"
    limit_headers = ANTHROPIC_LIMIT_HEADERS
    supports_schema = True
    supports_prompt_cache = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        client: Any = None,
    ) -> None:
        import anthropic

        self.sdk = anthropic
        self.model = model
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        key = require_key(("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), api_key, "anthropic")
        self._make = lambda: anthropic.AsyncAnthropic(
            api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self._fixed = client
        self._clients: dict[int, Any] = {}

    def build_params(self, request: ChatRequest) -> dict[str, Any]:
        """Messages API parameters for one request (also used for batch submission)."""
        params: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.temperature != 1.0:  # 1.0 is the API default; newer SDKs dropped the kwarg
            params["temperature"] = request.temperature
        if request.system:
            block: dict[str, Any] = {"type": "text", "text": request.system}
            if request.cache_system:
                block["cache_control"] = {"type": "ephemeral"}
            params["system"] = [block]
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.schema_:
            tool = request.schema_name or "output"
            params["tools"] = [
                {
                    "name": tool,
                    "description": f"Return the {tool} exactly as requested.",
                    "input_schema": request.schema_,
                }
            ]
            params["tool_choice"] = {"type": "tool", "name": tool}
        return params

    async def complete(self, request: ChatRequest) -> Completion:
        """One Messages API call (no SDK retries)."""
        with self.sdk_errors():
            params = self.build_params(request)
            # Sampling knobs go in the body directly: recent SDKs no longer list them as kwargs.
            extra = {k: params.pop(k) for k in ("temperature", "top_p") if k in params}
            raw = await self.client().messages.with_raw_response.create(
                **params, **({"extra_body": extra} if extra else {})
            )
            msg = raw.parse()
            if inspect.isawaitable(msg):
                msg = await msg
        limits = rate_limits(raw.headers, ANTHROPIC_LIMIT_HEADERS)
        return self.to_completion(msg, limits=limits, request_id=raw.headers.get("request-id", ""))

    def to_completion(
        self, msg: Any, *, limits: dict[str, float] | None = None, request_id: str = ""
    ) -> Completion:
        """A Completion from a Message (dict or SDK object)."""

        def get(o: Any, k: str, d: Any = None) -> Any:
            """A field of the SDK's message object or of a raw JSON dict (fake servers, batch)."""
            return o.get(k, d) if isinstance(o, dict) else getattr(o, k, d)

        text_parts: list[str] = []
        data: Any = None
        for block in get(msg, "content", []) or []:
            btype = block.get("type") if isinstance(block, dict) else getattr(block, "type", "")
            if btype == "tool_use":
                data = block.get("input") if isinstance(block, dict) else block.input
            elif btype == "text":
                text_parts.append(
                    str(block.get("text", "") if isinstance(block, dict) else block.text)
                )
        usage = get(msg, "usage")
        if usage is None:
            raise CallError("response without usage", kind="bad_response", retryable=True)

        def u(k: str) -> int:
            v = usage.get(k) if isinstance(usage, dict) else getattr(usage, k, 0)
            return int(v or 0)

        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                data = None
        return Completion(
            text="".join(text_parts),
            data=data,
            stop_reason=str(get(msg, "stop_reason", "") or ""),
            input_tokens=u("input_tokens"),
            output_tokens=u("output_tokens"),
            cache_read_tokens=u("cache_read_input_tokens"),
            cache_write_tokens=u("cache_creation_input_tokens"),
            request_id=request_id or str(get(msg, "id", "") or ""),
            model=str(get(msg, "model", "") or self.model),
            rate_limits=limits or {},
        )
