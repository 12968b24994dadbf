"""What every validator shares: the ``check(records) -> verdicts`` contract and label items.

A validator is a small object with a ``name`` and ``check(records)``, in the style of
datatrove's filters: it returns one :class:`~emocurate.records.Verdict` per record (keep or
reject, a one-line reason, an optional score). Validators never drop rows themselves; the
pipeline decides what to do with the verdicts, so every row keeps its reasons.

Label checks (leakage, judge, probe) do not read a record's whole text: a story written by a
base model starts with the opening given in its prompt, which may name the emotion, so they
read :attr:`Story.generated_text`; a dialogue carries one label per speaker, so each speaker's
turns are a separate :class:`LabelItem`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from emocurate.records import (
    AnyRecord,
    Dialogue,
    NeutralDialogue,
    RegulationPair,
    Story,
    Turn,
    Verdict,
    record_text,
)


@runtime_checkable
class Validator(Protocol):
    """One check over a batch of records.

    ``fingerprint()`` returns everything that changes the verdicts (settings, model names);
    the pipeline hashes it with the input to cache verdicts, so a rerun skips finished work.
    ``stats`` holds run-level statistics (agreement, calibration) after :meth:`check`.
    """

    name: str
    stats: dict[str, Any]

    def check(self, records: Sequence[AnyRecord]) -> list[Verdict]:
        """Return exactly one verdict per record, in input order."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change this validator's verdicts (no secrets)."""
        ...


def keep(record: AnyRecord, validator: str, score: float | None = None, **details: Any) -> Verdict:
    """A passing verdict."""
    return Verdict(
        record_id=record.id, validator=validator, keep=True, score=score, details=details
    )


def reject(
    record: AnyRecord, validator: str, reason: str, score: float | None = None, **details: Any
) -> Verdict:
    """A failing verdict; ``reason`` is ``"code: detail"`` so reasons can be counted by code."""
    return Verdict(
        record_id=record.id,
        validator=validator,
        keep=False,
        reason=reason,
        score=score,
        details=details,
    )


def reason_code(reason: str) -> str:
    """The code part of a ``"code: detail"`` reason."""
    return reason.split(":", 1)[0].strip() if reason else ""


@dataclass(frozen=True)
class LabelItem:
    """One (text, intended emotion) pair a label check judges.

    Attributes:
        index: position of the record in the checked batch.
        record_id: the record's id.
        role: ``story``, ``human``, ``assistant`` or ``setup``.
        text: the text the label must be inferred from (never the prompt's opening).
        emotion: the intended emotion.
    """

    index: int
    record_id: str
    role: str
    text: str
    emotion: str


def speaker_text(turns: Sequence[Turn], speaker: str) -> str:
    """One speaker's turns joined by blank lines."""
    return "\n\n".join(t.text for t in turns if t.speaker == speaker)


def label_items(records: Sequence[AnyRecord]) -> list[LabelItem]:
    """Every labelled text in ``records``.

    Stories give their generated text; dialogues give one item per speaker (that speaker's
    turns, that speaker's emotion); regulation pairs give their setup (the continuations are
    judged by regulation metrics, not by emotion label); neutral dialogues give nothing.
    """
    items: list[LabelItem] = []
    for i, r in enumerate(records):
        if isinstance(r, Story):
            items.append(LabelItem(i, r.id, "story", r.generated_text, r.emotion))
        elif isinstance(r, Dialogue):
            items.append(
                LabelItem(i, r.id, "human", speaker_text(r.turns, "human"), r.human_emotion)
            )
            items.append(
                LabelItem(
                    i, r.id, "assistant", speaker_text(r.turns, "assistant"), r.assistant_emotion
                )
            )
        elif isinstance(r, RegulationPair):
            items.append(LabelItem(i, r.id, "setup", r.setup, r.emotion))
    return items


def record_emotions(record: AnyRecord) -> list[str]:
    """The emotion labels a record carries (``["neutral"]`` for neutral dialogues)."""
    if isinstance(record, Story | RegulationPair):
        return [record.emotion]
    if isinstance(record, Dialogue):
        return list(dict.fromkeys([record.human_emotion, record.assistant_emotion]))
    if isinstance(record, NeutralDialogue):
        return ["neutral"]
    return []


def check_text(record: AnyRecord) -> str:
    """The text that content checks (dedup, language) read: the generated part of a story."""
    if isinstance(record, Story):
        return record.generated_text
    return record_text(record)
