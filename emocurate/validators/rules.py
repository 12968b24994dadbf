"""Rules: cheap, explainable checks that catch broken generations before any model looks.

Each check has a reason code, counted in the funnel:

* ``empty`` – no text (or, for a base-model story, nothing generated after the opening);
* ``structure`` – a dialogue must start with the human and alternate speakers with no empty
  turn and no turn that writes the other side ("Human: …" inside a turn); a regulation pair
  needs a setup and two different, non-empty continuations;
* ``too_short`` / ``too_long`` – word count outside ``[min_words, max_words]`` (defaults fit
  both a TinyStories-size model's 60–150-token stories and an API model's 150–400-word ones);
* ``refusal`` / ``meta_text`` – the generator refused or talked about its output ("As an AI
  language model…", "Here are 12 stories", "Sure! Here is…", "Title:", "[Name]");
* ``non_english`` – too many non-Latin letters or too few English function words;
* ``garbled`` – mostly non-letters, or many vowel-less "words";
* ``repetitive`` – a degenerate loop (one word repeated many times in a row, or few distinct
  word trigrams), which small models produce at low temperature;
* ``truncated`` – the text stops mid-sentence (no final ``.``, ``!``, ``?``, closing quote or
  bracket). A generation that hit its token limit (stop reason ``max_tokens``/``length`` in
  ``provenance.params``) but ends on a full sentence is only noted in the details, unless
  ``strict_stop_reason`` is set: a story cut between sentences is usually still usable.

``truncation="flag"`` (or any ``*_action="flag"``) keeps the record and only records the
problem; ``"off"`` skips the check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from emocurate.configs import Action, RulesConfig
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
from emocurate.validators.base import check_text, keep, reject

WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_FUNCTION_WORDS = (
    "a an the and or but so if then than that this these those there here of to in on at by "
    "for with from up down out over under into onto about as is am are was were be been being "
    "have has had do does did not no yes it its it's he she they we you i me him her them us my "
    "your his their our what who when where why how all some any very just too also can could "
    "will would shall should may might must one two said went came got go again after "
    "before because while until once each every never always more most much many little big "
    "mom dad day time"
)
ENGLISH_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split(" "))
"""Common English words: their share separates English from other languages and word salad."""
TERMINAL = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]*_]*\s*$|(?<=[^\s\"])[\"\u201d\u2019)\]]\s*$")
"""A sentence end: final punctuation (maybe inside quotes/brackets), or a closing quote or
bracket right after a word (an opening quote at the very end is a cut-off, not an end)."""
SPEAKER_PREFIX = re.compile(r"(?m)^\s*(?:human|assistant|user|ai)\s*:", re.IGNORECASE)

REFUSAL_PATTERNS = [
    r"\bas an ai(?: language model| assistant)?\b,? i (?:can(?:no|')t|am (?:not|unable)|don't)",
    r"\bas an ai language model\b",
    r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|won't|am unable to)",
    r"\bi (?:can(?:no|')t|won't|am unable to) (?:write|create|generate|produce|help with|"
    r"fulfil+|comply)\b",
]
META_PATTERNS = [
    r"\bhere (?:is|are|'s) (?:a |an |the |some |your |my |\d+ |one |two |three |five |ten |"
    r"twelve )?(?:\w+ ){0,2}(?:stor(?:y|ies)|dialogues?|conversations?|versions?|"
    r"continuations?|examples?|scenarios?|responses?)\b",
    r"^\s*(?:sure|certainly|of course|absolutely)\b[,!.]",
    r"(?m)^\s*(?:\*\*)?(?:title|story \d+|dialogue \d+|scenario \d+)\s*[:#*]",
    r"\[(?:name|your name|insert[^\]]*|character name|emotion)\]",
    r"\bword count\b",
    r"(?m)^\s*(?:note|disclaimer)\s*:",
    r"\bi hope (?:you enjoy|this (?:story|helps|meets))",
]


def words(text: str) -> list[str]:
    """Letter words (apostrophes inside words kept)."""
    return WORD.findall(text)


def _text_stats(text: str) -> dict[str, float]:
    ws = words(text)
    lower = [w.lower() for w in ws]
    letters = [c for c in text if c.isalpha()]
    non_space = [c for c in text if not c.isspace()]
    non_latin = sum(1 for c in letters if not _is_latin(c))
    long_words = [w for w in lower if len(w) >= 4 and w.isascii()]
    vowelless = sum(1 for w in long_words if not re.search(r"[aeiouy]", w))
    run = longest_run(lower)
    trigrams = list(zip(lower, lower[1:], lower[2:], strict=False))
    return {
        "words": float(len(ws)),
        "english": sum(1 for w in lower if w in ENGLISH_FUNCTION_WORDS) / max(len(ws), 1),
        "non_latin": non_latin / max(len(letters), 1),
        "alpha": len(letters) / max(len(non_space), 1),
        "vowelless": vowelless / max(len(long_words), 1),
        "repeat_run": float(run),
        "distinct_trigrams": len(set(trigrams)) / max(len(trigrams), 1),
    }


def _is_latin(c: str) -> bool:
    return c.isascii() or "\u00c0" <= c <= "\u024f"


def longest_run(tokens: Sequence[str]) -> int:
    """Length of the longest run of one token repeated back to back."""
    best = cur = 0
    prev: str | None = None
    for t in tokens:
        cur = cur + 1 if t == prev else 1
        prev = t
        best = max(best, cur)
    return best


def ends_mid_sentence(text: str) -> bool:
    """True when the text does not end with sentence-final punctuation."""
    stripped = text.rstrip()
    return bool(stripped) and TERMINAL.search(stripped) is None


def stop_reason(record: AnyRecord) -> str:
    """The generation's stop reason, when the generator recorded one in provenance params."""
    prov = getattr(record, "provenance", None)
    if prov is None:
        return ""
    params = prov.params or {}
    for key in ("stop_reason", "finish_reason"):
        val = params.get(key)
        if isinstance(val, str) and val:
            return val
    return ""


def structure_problems(record: AnyRecord) -> list[str]:
    """Structural faults of dialogues and regulation pairs (empty list when fine)."""
    if isinstance(record, NeutralDialogue) and not record.turns:
        return []  # a base model's neutral narrative has no turns to check
    if isinstance(record, Dialogue | NeutralDialogue):
        return _turn_problems(record.turns)
    if isinstance(record, RegulationPair):
        probs = [
            f"regulation pair has no {part}"
            for part in ("setup", "healthy", "unhealthy")
            if not getattr(record, part).strip()
        ]
        if not probs and record.healthy.strip() == record.unhealthy.strip():
            probs.append("healthy and unhealthy continuations are identical")
        return probs
    return []


def _turn_problems(turns: Sequence[Turn]) -> list[str]:
    if len(turns) < 2:
        return [f"dialogue has {len(turns)} turn(s), needs at least 2"]
    probs: list[str] = []
    if turns[0].speaker != "human":
        probs.append("dialogue starts with the assistant, not the human")
    for k in range(1, len(turns)):
        if turns[k].speaker == turns[k - 1].speaker:
            probs.append(
                f"turns {k - 1} and {k} are both {turns[k].speaker}: speakers must alternate"
            )
            break
    for k, t in enumerate(turns):
        if not t.text.strip():
            probs.append(f"turn {k} is empty")
            break
        if SPEAKER_PREFIX.search(t.text):
            probs.append(f"turn {k} contains a speaker prefix (the model wrote both sides)")
            break
    return probs


class RulesValidator:
    """Length, structure, refusal/meta-text, language, repetition and truncation checks."""

    name = "rules"

    def __init__(self, config: RulesConfig | None = None) -> None:
        self.config = config or RulesConfig()
        self.stats: dict[str, Any] = {}
        self._refusal = [re.compile(p, re.IGNORECASE) for p in REFUSAL_PATTERNS]
        self._meta = [re.compile(p, re.IGNORECASE) for p in META_PATTERNS]

    def fingerprint(self) -> dict[str, Any]:
        """Thresholds and the pattern lists (editing a pattern invalidates cached verdicts)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "version": 1,
            "patterns": [*REFUSAL_PATTERNS, *META_PATTERNS],
        }

    def problems(self, record: AnyRecord) -> tuple[list[tuple[str, str, Action]], dict[str, Any]]:
        """All ``(code, detail, action)`` problems of one record, plus measured statistics."""
        cfg = self.config
        text = check_text(record)
        found: list[tuple[str, str, Action]] = []
        if not text.strip():
            what = (
                "nothing generated after the prompt opening"
                if (isinstance(record, Story) and record.prompt_prefix and record.text.strip())
                else "no text"
            )
            return [("empty", what, "reject")], {"words": 0}
        found += [("structure", p, "reject") for p in structure_problems(record)]
        full = _plain_text(record)
        st = _text_stats(full)
        n = int(st["words"])
        if n < cfg.min_words:
            found.append(("too_short", f"{n} words < {cfg.min_words}", "reject"))
        if n > cfg.max_words:
            found.append(("too_long", f"{n} words > {cfg.max_words}", "reject"))
        found += self._meta_problems(record, text)
        found += self._language_problems(st)
        found += self._truncation_problems(record, st)
        return found, {k: round(v, 4) for k, v in st.items()}

    def _meta_problems(self, record: AnyRecord, text: str) -> list[tuple[str, str, Action]]:
        act = self.config.meta_action
        if act == "off":
            return []
        out: list[tuple[str, str, Action]] = []
        # An AI assistant speaking as itself is content, not a refusal, in dialogues and in
        # regulation pairs whose protagonist is an assistant.
        ai_speaks = isinstance(record, Dialogue | NeutralDialogue) or (
            isinstance(record, RegulationPair) and record.protagonist == "ai_assistant"
        )
        if not ai_speaks:
            for pat in self._refusal:
                m = pat.search(text)
                if m:
                    out.append(("refusal", f"'{m.group(0)}'", act))
                    break
        for pat in self._meta:
            m = pat.search(text)
            if m:
                out.append(("meta_text", f"'{m.group(0).strip()}'", act))
                break
        return out

    def _language_problems(self, st: dict[str, float]) -> list[tuple[str, str, Action]]:
        cfg, act = self.config, self.config.language_action
        if act == "off":
            return []
        out: list[tuple[str, str, Action]] = []
        # Garbled text is also "not English"; report the more specific problem.
        if st["alpha"] < cfg.min_alpha:
            out.append(("garbled", f"{st['alpha']:.0%} letters among characters", act))
        elif st["vowelless"] > cfg.max_vowelless and st["words"] >= 8:
            out.append(("garbled", f"{st['vowelless']:.0%} vowel-less words", act))
        elif st["non_latin"] > cfg.max_non_latin:
            out.append(("non_english", f"{st['non_latin']:.0%} non-Latin letters", act))
        elif st["words"] >= 8 and st["english"] < cfg.min_english:
            out.append(
                (
                    "non_english",
                    f"{st['english']:.0%} English function words < {cfg.min_english:.0%}",
                    act,
                )
            )
        if st["repeat_run"] > cfg.max_repeat_run:
            out.append(
                ("repetitive", f"one word repeated {int(st['repeat_run'])} times in a row", act)
            )
        elif st["words"] >= 20 and st["distinct_trigrams"] < cfg.min_distinct_trigrams:
            out.append(("repetitive", f"{st['distinct_trigrams']:.0%} distinct word trigrams", act))
        return out

    def _truncation_problems(
        self, record: AnyRecord, st: dict[str, float]
    ) -> list[tuple[str, str, Action]]:
        act = self.config.truncation
        if act == "off":
            return []
        last = _last_text(record)
        reason = stop_reason(record)
        hit_limit = reason in {"max_tokens", "length"}
        if ends_mid_sentence(last):
            tail = last.rstrip()[-30:].replace("\n", " ")
            why = f"stop reason {reason}, " if hit_limit else ""
            return [("truncated", f"{why}ends mid-sentence: '…{tail}'", act)]
        if hit_limit and self.config.strict_stop_reason:
            return [("truncated", f"stop reason {reason}", act)]
        return []

    def check(self, records: Sequence[AnyRecord]) -> list[Verdict]:
        """One verdict per record; the reason is the first rejecting problem."""
        out: list[Verdict] = []
        counts: dict[str, int] = {}
        for r in records:
            probs, st = self.problems(r)
            for code, _, _ in probs:
                counts[code] = counts.get(code, 0) + 1
            rejecting = [(c, d) for c, d, a in probs if a == "reject"]
            flags = [f"{c}: {d}" for c, d, a in probs if a == "flag"]
            hit_limit = stop_reason(r) in {"max_tokens", "length"}
            details: dict[str, Any] = {"stats": st, "problems": [f"{c}: {d}" for c, d, _ in probs]}
            if flags:
                details["flags"] = flags
            if hit_limit:
                details["hit_token_limit"] = True
            score = float(len(probs))
            if rejecting:
                code, detail = rejecting[0]
                out.append(reject(r, self.name, f"{code}: {detail}", score=score, **details))
            else:
                out.append(keep(r, self.name, score=score, **details))
        self.stats = {"checked": len(records), "problems": counts}
        return out


def _plain_text(record: AnyRecord) -> str:
    """Text without speaker labels, so "Human:" does not count as a word."""
    if isinstance(record, Dialogue | NeutralDialogue) and record.turns:
        return "\n\n".join(t.text for t in record.turns)
    return record_text(record)


def _last_text(record: AnyRecord) -> str:
    """The part of a record whose ending tells whether generation was cut off."""
    if isinstance(record, Dialogue | NeutralDialogue) and record.turns:
        return record.turns[-1].text
    if isinstance(record, RegulationPair):
        # Both continuations are generated; a cut in either counts (report the worse one).
        return record.unhealthy if ends_mid_sentence(record.unhealthy) else record.healthy
    return check_text(record)
