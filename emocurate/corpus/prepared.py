"""A document ready for the model: the reader's :class:`Doc` plus its tokens and windows.

:class:`~emocurate.corpus.score.Preparer` makes it (the CPU half of scoring),
:class:`~emocurate.corpus.score.Scorer` runs it, and the row is built from it
(:meth:`~emocurate.corpus.rows.CorpusScore.of`). It holds the reader's document object
itself rather than copies of its fields, so a document has one type from reader to row; it is
its own module so that the row can be built from it without importing the scorer (torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emocurate.corpus.readers import Doc


@dataclass
class Prepared:
    """A tokenised document ready for the model (plain data: travels between Ray workers)."""

    doc: Doc
    index: int  # position in the scored stream (the first ``trace_others`` keep a trace)
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span of each token in ``doc.text`` (fast tokenizers)
    windows: list[tuple[int, int, int]]  # (start in body, length, first token kept)
    turns: list[tuple[str, int, int]]  # (speaker, first token, end token) of dialogue turns

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {**self.__dict__, "doc": self.doc.record()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prepared:
        """Inverse of :meth:`to_dict`."""
        return cls(
            doc=Doc.from_record(d["doc"]),
            index=int(d["index"]),
            ids=list(d["ids"]),
            offsets=[(int(a), int(b)) for a, b in d["offsets"]],
            windows=[(int(s), int(n), int(k)) for s, n, k in d["windows"]],
            turns=[(str(s), int(a), int(b)) for s, a, b in d["turns"]],
        )
