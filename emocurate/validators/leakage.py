"""Leakage: a story that names its own emotion teaches a vector the word, not the feeling.

For each labelled text the validator searches the emotion's leak terms from the taxonomy
(its forms, e.g. "sad", "sadness", "sadden", and direct synonyms) with one compiled regular
expression per emotion:

* case-insensitive, after Unicode NFKC normalisation (full-width letters, ligatures);
* whole words only: the match may not be preceded or followed by a letter, digit or
  underscore, so "Sadie" and "saddle" do not hit "sad" while "sad," and "SAD" do;
* hyphen/space variation: the parts of "self-conscious" or "at ease" may be joined by any run
  of spaces or hyphen/dash characters, and a hyphenated term also matches written solid
  ("light-hearted" → "lighthearted");
* the longest term wins where terms overlap ("on edge" before "edge").

Inflections are whatever the taxonomy lists as forms; ``inflect=True`` also accepts the
regular suffixes -s/-es/-ed/-d/-ing/-ly/-ness on single-word terms (off by default: "cross"
would then hit "crossing").

Which text is searched: a story's generated text (never the prompt's opening); a regulation
pair's setup (a healthy continuation may name the feeling on purpose: affect labelling is a
regulation strategy); for a dialogue, by default (``dialogue_scope="all"``) each speaker's
emotion is searched in the whole conversation, because vectors fitted on a dialogue read both
speakers and an assistant saying "I can tell you're anxious" leaks the human's label just as
much; ``dialogue_scope="own"`` searches each emotion only in its own speaker's turns.
Neutral dialogues carry no label and always pass.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emocurate.configs import LeakageConfig
from emocurate.errors import UnknownEmotionError
from emocurate.records import AnyRecord, Dialogue, RegulationPair, Story, Verdict
from emocurate.taxonomy import Taxonomy, load_taxonomy
from emocurate.validators.base import keep, reject

SEPARATORS = r"[\s\-\u2010\u2011\u2012\u2013\u2014\u00ad]"
SUFFIXES = ("s", "es", "ed", "d", "ing", "ly", "ness")


@dataclass(frozen=True)
class Leak:
    """One match of a leak term: the term, what the text said, and where."""

    term: str
    matched: str
    start: int
    end: int
    where: str = ""


def normalize(text: str) -> str:
    """NFKC-normalise so full-width or ligature spellings match plain ASCII terms."""
    return unicodedata.normalize("NFKC", text)


def term_pattern(term: str, inflect: bool = False) -> str:
    """The regex (without boundaries) for one term, tolerant of hyphen/space variation."""
    parts = [p for p in re.split(r"[\s\-\u2010-\u2014]+", term.strip().lower()) if p]
    if not parts:
        return ""
    hyphenated = "-" in term
    joiner = f"{SEPARATORS}*" if hyphenated else f"{SEPARATORS}+"
    body = joiner.join(re.escape(p) for p in parts)
    if inflect and len(parts) == 1:
        body += "(?:" + "|".join(SUFFIXES) + ")?"
    return body


@lru_cache(maxsize=4096)
def compile_terms(terms: tuple[str, ...], inflect: bool = False) -> re.Pattern[str] | None:
    """One case-insensitive whole-word regex for many terms, longest first."""
    pats = sorted(
        {p for p in (term_pattern(t, inflect) for t in terms) if p}, key=len, reverse=True
    )
    if not pats:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(pats) + r")(?![\w])", re.IGNORECASE)


def find_leaks(
    text: str, terms: Iterable[str], *, inflect: bool = False, where: str = ""
) -> list[Leak]:
    """Every occurrence of any of ``terms`` in ``text`` (offsets into the normalised text)."""
    terms = tuple(sorted({t.lower() for t in terms if t.strip()}))
    pattern = compile_terms(terms, inflect)
    if pattern is None or not text:
        return []
    norm = normalize(text)
    out: list[Leak] = []
    for m in pattern.finditer(norm):
        out.append(
            Leak(
                term=_which_term(m.group(0), terms, inflect),
                matched=m.group(0),
                start=m.start(),
                end=m.end(),
                where=where,
            )
        )
    return out


def _which_term(matched: str, terms: tuple[str, ...], inflect: bool) -> str:
    for t in sorted(terms, key=len, reverse=True):
        pat = compile_terms((t,), inflect)
        if pat is not None and pat.fullmatch(matched):
            return t
    return matched.lower()


class LeakageValidator:
    """Reject records whose text names their own emotion (with the matched span)."""

    name = "leakage"

    def __init__(
        self, config: LeakageConfig | None = None, taxonomy: Taxonomy | None = None
    ) -> None:
        self.config = config or LeakageConfig()
        self._taxonomy = taxonomy
        self.stats: dict[str, Any] = {}

    @property
    def taxonomy(self) -> Taxonomy:
        """The taxonomy whose leak terms are searched (the bundled one unless given)."""
        if self._taxonomy is None:
            self._taxonomy = load_taxonomy()
        return self._taxonomy

    def fingerprint(self) -> dict[str, Any]:
        """Settings plus the leak terms themselves (a taxonomy edit invalidates the cache)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "version": 1,
            "taxonomy": self.taxonomy.version,
            "terms_hash": hash_terms(self.taxonomy),
        }

    def terms(self, emotion: str) -> tuple[str, ...]:
        """The leak terms of one emotion (taxonomy forms and synonyms plus extra terms)."""
        e = self.taxonomy.get(emotion)
        extra = self.config.extra_terms.get(e.name, [])
        return tuple(dict.fromkeys([*e.leak_terms, *(t.lower() for t in extra)]))

    def leaks(self, record: AnyRecord) -> list[tuple[str, Leak]]:
        """``(emotion, leak)`` pairs found in the labelled text of ``record``."""
        inflect = self.config.inflect
        found: list[tuple[str, Leak]] = []
        if isinstance(record, Story):
            found += [
                (record.emotion, lk)
                for lk in find_leaks(
                    record.generated_text, self.terms(record.emotion), inflect=inflect
                )
            ]
        elif isinstance(record, RegulationPair):
            found += [
                (record.emotion, lk)
                for lk in find_leaks(
                    record.setup, self.terms(record.emotion), inflect=inflect, where="setup"
                )
            ]
        elif isinstance(record, Dialogue):
            for speaker, emotion in (
                ("human", record.human_emotion),
                ("assistant", record.assistant_emotion),
            ):
                terms = self.terms(emotion)
                for k, turn in enumerate(record.turns):
                    if self.config.dialogue_scope == "own" and turn.speaker != speaker:
                        continue
                    found += [
                        (emotion, lk)
                        for lk in find_leaks(
                            turn.text, terms, inflect=inflect, where=f"turn {k} ({turn.speaker})"
                        )
                    ]
        return found

    def check(self, records: Sequence[AnyRecord]) -> list[Verdict]:
        """One verdict per record: rejected with the first matched span when anything leaks."""
        out: list[Verdict] = []
        n_leaky = 0
        for r in records:
            try:
                found = self.leaks(r)
            except UnknownEmotionError as exc:
                out.append(reject(r, self.name, f"unknown_emotion: {exc.message}"))
                continue
            if not found:
                out.append(keep(r, self.name, score=0.0))
                continue
            n_leaky += 1
            emotion, first = found[0]
            where = f" in {first.where}" if first.where else ""
            spans = [
                {
                    "emotion": e,
                    "term": lk.term,
                    "matched": lk.matched,
                    "start": lk.start,
                    "end": lk.end,
                    "where": lk.where,
                }
                for e, lk in found[: self.config.max_spans]
            ]
            out.append(
                reject(
                    r,
                    self.name,
                    f"leak: '{first.matched}' names {emotion} (term '{first.term}'){where} "
                    f"at {first.start}-{first.end}",
                    score=float(len(found)),
                    spans=spans,
                    n_matches=len(found),
                )
            )
        self.stats = {"checked": len(records), "leaky": n_leaky}
        return out


def hash_terms(taxonomy: Taxonomy) -> str:
    """A short hash of every emotion's leak terms."""
    from emocurate.records import stable_id

    return stable_id(*(f"{e.name}={'|'.join(e.leak_terms)}" for e in taxonomy.emotions))
