"""One fingerprint helper for everything that decides whether work can be reused.

Pipeline stages, corpus scoring shards and the validators' verdict cache all skip work whose
fingerprint matches an earlier run. A fingerprint is a SHA-256 (16 hex) of canonical JSON
parts (configs, upstream fingerprints) plus, where inputs are files, the *bytes* of those
files: an edited input at the same path changes it, a rewrite of the same bytes does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from emocurate.records import canonical_json

LENGTH = 16


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...


def hash_file(h: _Hash, path: Path) -> None:
    """Feed a file's size and bytes into ``h`` (an unreadable file feeds its error instead)."""
    try:
        h.update(f"{path.stat().st_size}\x1f".encode())
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:  # the stage reading it reports it; the fingerprint records the failure
        h.update(f"unreadable:{exc.strerror}".encode())


def content_hash(paths: Iterable[str | Path]) -> str:
    """SHA-256 (16 hex) of what files hold; a folder counts with every file under it, by name."""
    h = hashlib.sha256()
    for spec in paths:
        p = Path(spec)
        h.update(str(spec).encode() + b"\x1e")
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                h.update(f.relative_to(p).as_posix().encode() + b"\x1f")
                hash_file(h, f)
        elif p.exists():
            hash_file(h, p)
        else:
            h.update(b"missing")
    return h.hexdigest()[:LENGTH]


def fingerprint(*parts: Any, length: int = LENGTH) -> str:
    """SHA-256 of the parts' canonical JSON (configs, upstream fingerprints, content hashes)."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:length]
