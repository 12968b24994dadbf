"""Append-only response cache: a rerun or a resume after ``kill -9`` repeats no finished call.

One JSON line per completed call, keyed by the sha256 of the fully rendered request
(:meth:`ChatRequest.cache_key`: backend, model, system, messages, schema and every sampling
parameter) and the endpoint (base URL without credentials). Each line is written with a single ``write`` on an ``O_APPEND`` descriptor and
flushed (and fsynced) before the engine counts the call as done, so a crash loses at most the
calls in flight. A line torn by a crash is skipped on load, and a newline is written first so
the next append starts clean. API keys never reach the cache: only requests' rendered content
and completions are stored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from emocurate.errors import InputError
from emocurate.generators.backends.base import ChatRequest, Completion


def request_key(request: ChatRequest, backend: str, endpoint: str = "") -> str:
    """The cache key of a request for a backend at an endpoint (sha256 hex).

    ``endpoint`` is the base URL with credentials stripped
    (:func:`emocurate.redact.endpoint_id`); two servers that serve the same model name give
    different answers, so they never share a key. The SDK's default endpoint is ``""``.
    """
    text = request.cache_key(backend)
    if endpoint:
        text += "\x1fendpoint=" + endpoint
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """A JSONL file of ``{"key", "custom_id", "completion"}`` lines; later lines win."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._mem: dict[str, Completion] = {}
        self.skipped_lines = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create cache folder {self.path.parent}: {exc.strerror}"
            ) from None
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if self.path.stat().st_size and not self._ends_with_newline():
            os.write(self._fd, b"\n")

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for raw in fh:
                line = raw.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                    self._mem[row["key"]] = Completion.model_validate(row["completion"])
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1  # a line torn by a crash: that call is redone

    def __len__(self) -> int:
        return len(self._mem)

    def __contains__(self, key: str) -> bool:
        return key in self._mem

    def get(self, key: str) -> Completion | None:
        """The stored completion for ``key``, or None."""
        return self._mem.get(key)

    def put(self, key: str, completion: Completion, *, custom_id: str = "") -> None:
        """Append one completion durably (one write, then fsync)."""
        stored = completion.model_copy(update={"rate_limits": {}})
        line = json.dumps(
            {"key": key, "custom_id": custom_id, "completion": stored.model_dump(mode="json")},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        os.write(self._fd, (line + "\n").encode("utf-8"))
        if self.fsync:
            os.fsync(self._fd)
        self._mem[key] = stored

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
