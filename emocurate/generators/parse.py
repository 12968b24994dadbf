"""Turn a completion into item dicts: structured data first, delimiter text as the fallback.

Backends with structured output return ``Completion.data`` already shaped by the request's
JSON schema. Backends without it (a local model, an OpenAI-compatible server that ignores
``response_format``) are asked for a plain-text layout instead::

    === ITEM 1 ===
    pov: first
    text: The kettle clicked off...
    ...more lines of the same field...
    === ITEM 2 ===
    ...
    === END ===

An item is complete only when the next ``=== ITEM`` header or ``=== END ===`` follows it, so an
answer cut off by ``max_tokens`` loses only its unfinished last item. Anything unusable raises
:class:`ParseError` (of which :class:`~emocurate.generators.engine.MalformedOutput` is one)
so the engine retries the request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from emocurate.errors import EmocurateError
from emocurate.generators.backends.base import Completion

ITEM_RE = re.compile(r"^\s*={3,}\s*ITEM\b[^=\n]*={3,}\s*$", re.IGNORECASE | re.MULTILINE)
END_RE = re.compile(r"^\s*={3,}\s*END\s*={3,}\s*$", re.IGNORECASE | re.MULTILINE)


class ParseError(EmocurateError, ValueError):
    """The completion does not contain the requested items.

    Still a ``ValueError`` (its base before the one error family): callers and tests catch
    parse failures of the judge and rubric answers as ``ValueError``.
    """


def delimited_instructions(fields: dict[str, str], n: int) -> str:
    """Prompt text describing the delimiter layout for ``n`` items with ``fields``."""
    lines = [f"Write exactly {n} item(s) in this plain-text layout and nothing else:", ""]
    for i in (1, 2):
        lines.append(f"=== ITEM {i} ===")
        lines.extend(f"{name}: <{desc}>" for name, desc in fields.items())
    lines += [
        "...",
        "=== END ===",
        "",
        "A field's value may continue over several lines until the next field name.",
    ]
    return "\n".join(lines)


def render_delimited(items: list[dict[str, Any]]) -> str:
    """The inverse of :func:`parse_delimited` (used by the fakes and in tests)."""
    out = []
    for i, item in enumerate(items, 1):
        out.append(f"=== ITEM {i} ===")
        for k, v in item.items():
            if isinstance(v, list) and v and isinstance(v[0], dict) and "speaker" in v[0]:
                v = "\n".join(
                    f"{'Human' if t['speaker'] == 'human' else 'Assistant'}: {t['text']}" for t in v
                )
                k = "conversation"
            out.append(f"{k}: {v}")
    out.append("=== END ===")
    return "\n".join(out)


def parse_delimited(text: str, fields: list[str]) -> list[dict[str, str]]:
    """Items from the delimiter layout; the unfinished last item of a cut-off answer is dropped."""
    heads = list(ITEM_RE.finditer(text))
    if not heads:
        raise ParseError("no '=== ITEM ===' blocks in the answer")
    end = END_RE.search(text, heads[-1].end())
    field_re = re.compile(
        rf"^\s*({'|'.join(re.escape(f) for f in fields)})\s*:\s?(.*)$", re.IGNORECASE
    )
    items: list[dict[str, str]] = []
    for k, h in enumerate(heads):
        last = k == len(heads) - 1
        if last and end is None:
            break  # cut off mid-item
        stop = heads[k + 1].start() if not last else end.start()  # type: ignore[union-attr]
        body = text[h.end() : stop]
        item: dict[str, list[str]] = {}
        current: str | None = None
        for line in body.splitlines():
            m = field_re.match(line)
            if m:
                current = m.group(1).lower()
                item[current] = [m.group(2)]
            elif current is not None:
                item[current].append(line)
        items.append({k2: "\n".join(v).strip() for k2, v in item.items()})
    if not items:
        raise ParseError("the answer was cut off before its first item ended")
    return items


def completion_items(c: Completion, text_fields: list[str]) -> list[dict[str, Any]]:
    """Items from structured data (``{"items": [...]}``) or, failing that, delimiter text."""
    if c.data is not None:
        data = c.data
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ParseError(f"structured output is not valid JSON ({exc.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            return [x for x in data["items"] if isinstance(x, dict)]
        raise ParseError("structured output has no 'items' list")
    if c.text.lstrip().startswith("{"):
        try:
            data = json.loads(c.text)
        except json.JSONDecodeError:
            if c.stop_reason in {"max_tokens", "length"}:
                raise ParseError("JSON answer cut off at max_tokens") from None
            data = None
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            return [x for x in data["items"] if isinstance(x, dict)]
    return parse_delimited(c.text, text_fields)


def parse_conversation(text: str) -> list[dict[str, str]]:
    """``Human: ...`` / ``Assistant: ...`` lines to turns (continuation lines join the turn)."""
    turns: list[dict[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"^\s*(human|user|assistant|ai)\s*:\s?(.*)$", line, re.IGNORECASE)
        if m:
            who = "human" if m.group(1).lower() in {"human", "user"} else "assistant"
            turns.append({"speaker": who, "text": m.group(2)})
        elif turns and line.strip():
            turns[-1]["text"] += "\n" + line
    return [
        {"speaker": t["speaker"], "text": t["text"].strip()} for t in turns if t["text"].strip()
    ]
