"""Small text helpers shared by the generators."""

from __future__ import annotations

import re


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


_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|okay|ok|absolutely|here(?:'s| is| are)|below is)\b", re.I
)
_TITLE = re.compile(r"^(#+\s|\*\*[^*]+\*\*\s*$|title\s*:|story\s*:)", re.I)
_AFTERWORD = re.compile(
    r"^(note|notes|i hope|this story|the story|feel free|let me know|word count)\b", re.I
)


def _is_title(line: str) -> bool:
    """A heading line: marked as one, or short with no sentence punctuation at its end."""
    s = line.strip()
    if _TITLE.match(s):
        return True
    return 0 < len(s.split()) <= 8 and s[-1] not in ".!?\"'”’:,;"


def answer_text(text: str, *, min_words: int) -> str:
    """The item of a simple-style answer: the whole answer, less the wrapping a chat model adds.

    Drops a leading preamble line ("Sure! Here is a story:"), a leading title or heading, a
    trailing note ("I hope you enjoyed...", "Note: ...") after a blank line, wrapping quotes, and
    an unfinished last sentence. Raises ParseError when fewer than ``min_words`` words remain,
    so the engine retries the request with a moved seed instead of keeping a fragment.
    """
    from emocurate.generators.parse import ParseError

    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").strip().split("\n")]
    while lines and (not lines[0].strip() or _PREAMBLE.match(lines[0].strip())):
        first = lines.pop(0).strip()
        if first and not first.endswith(":") and len(first.split()) > 12:
            lines.insert(0, first)  # a real first sentence that happens to start with "Sure"
            break
    while len(lines) > 1 and (not lines[0].strip() or _is_title(lines[0])):
        lines.pop(0)
    paragraphs = [p.strip() for p in "\n".join(lines).split("\n\n") if p.strip()]
    while len(paragraphs) > 1 and _AFTERWORD.match(paragraphs[-1]):
        paragraphs.pop()
    body = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    if len(body) > 1 and body[0] == body[-1] and body[0] in '"“':
        body = body[1:-1].strip()
    body = trim_to_sentence(body)
    if len(body.split()) < min_words:
        raise ParseError(f"answer too short ({len(body.split())} words, need {min_words})")
    return body
