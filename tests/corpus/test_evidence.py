"""Flag evidence reads as whole words; token offsets never overlap (issue 10, item 6)."""

from __future__ import annotations

from emocurate.configs import ScoreConfig
from emocurate.corpus.readers import Doc
from emocurate.corpus.score import Preparer, Scorer
from emocurate.records import Flag
from emocurate.vectors.models import LoadedModel

from .conftest import make_vectorset


def test_offsets_of_bare_space_token_do_not_double_letters(lm: LoadedModel) -> None:
    # The tokenizer gives a bare '▁' before some capitals the same offsets as the letter.
    text = "A cat sat. Every dog ran."
    (p,) = Preparer(lm.tokenizer, 64).prepare([Doc("d", text)])
    for (_a0, a1), (b0, _b1) in zip(p.offsets, p.offsets[1:], strict=False):
        assert a1 <= b0, p.offsets
    assert "".join(text[a:b] for a, b in p.offsets).replace(" ", "") == text.replace(" ", "")


def test_evidence_is_widened_to_word_boundaries(lm: LoadedModel) -> None:
    text = "She did not trust the man who said he should not come."
    scorer = Scorer(make_vectorset(lm), lm, ScoreConfig())
    (p,) = scorer.prepare([Doc("d", text)])
    # a span starting inside "not" and ending inside "should"
    start = next(i for i, (a, b) in enumerate(p.offsets) if text[a:b].strip() == "ot")
    end = next(i for i, (a, b) in enumerate(p.offsets) if text[a:b] == " s") + 2  # " s", "h"
    f = scorer._evidence(p, Flag(kind="distress_episode", start=start, end=end, severity=1.0))
    snippet = f.evidence.split(": ", 1)[1].strip('"')
    words = text.replace(".", "").split()
    assert snippet.split()[0] in words and snippet.split()[-1].rstrip(".") in words, snippet
    assert snippet.startswith("not") and snippet.endswith("should"), snippet
