"""Small text helpers shared by the generators."""

from __future__ import annotations


def trim_to_sentence(text: str) -> str:
    """Drop an unfinished last sentence (generation stops at a token limit, not a full stop)."""
    text = text.rstrip()
    ends = [text.rfind(c) for c in (".", "!", "?", '."', '!"', '?"')]
    cut = max(ends)
    if cut < 0:
        return text
    if text[cut : cut + 2] in ('."', '!"', '?"'):
        cut += 1
    return text[: cut + 1]
