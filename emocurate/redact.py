"""Strip credentials from URLs before they are written anywhere (manifests, logs, cards, keys).

A base URL may carry secrets: ``https://user:pass@host/v1`` or ``https://host/v1?api-key=...``.
Nothing the tool writes may contain them, so every place that writes or reports a base URL goes
through :func:`redact_url` (or :func:`redact_text` for free text such as an error message).
The user-info part becomes ``***@`` and the value of every query parameter whose name looks like
a secret becomes ``***``; everything else (scheme, host, port, path) is kept, so two endpoints
remain distinguishable.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_PARAM = re.compile(
    r"(key|token|secret|password|passwd|pwd|auth|signature|sig|credential|session)", re.I
)
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
QUERY_SECRET_RE = re.compile(
    r"([?&;][\w.-]*(?:key|token|secret|password|passwd|pwd|auth|signature|sig|credential|session)"
    r"[\w.-]*=)[^&\s'\"<>]+",
    re.I,
)
"""A secret-looking query parameter outside a full URL (a server echoing a path back)."""


def redact_url(url: str | None) -> str | None:
    """``url`` with user-info and secret-looking query values replaced by ``***``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def endpoint_id(url: str | None) -> str:
    """The endpoint a request goes to, without credentials ("" for the SDK default)."""
    return (redact_url(url) or "").rstrip("/")


def redact_text(text: str) -> str:
    """Free text with every URL in it redacted (error messages, log lines)."""

    def one(m: re.Match[str]) -> str:
        url = m.group(0)
        core = url.rstrip(".,;:)]")
        return (redact_url(core) or "") + url[len(core) :]

    return QUERY_SECRET_RE.sub(lambda m: m.group(1) + MASK, URL_RE.sub(one, text))


def redact_obj(obj: Any) -> Any:
    """A JSON-like value with every string containing a URL redacted (for manifests)."""
    if isinstance(obj, str):
        return redact_text(obj) if "://" in obj else obj
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
