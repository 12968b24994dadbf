"""One document type from reader to row (issue 20, item 3): the reader's Doc is the object the
scorer carries (not a copy of its fields), and the row is built from it plus the analysis."""

from __future__ import annotations

import json
from pathlib import Path

from emocurate.configs import ScoreConfig
from emocurate.corpus.prepared import Prepared
from emocurate.corpus.readers import Bad, Doc, iter_corpus
from emocurate.corpus.score import Scorer
from emocurate.vectors.models import LoadedModel

from .conftest import STORIES, make_vectorset


def test_prepared_carries_the_readers_doc_and_the_row_is_built_from_it(
    lm: LoadedModel, tmp_path: Path
) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"text": STORIES[3]}) + "\n" + json.dumps({"text": 7}) + "\n")
    doc, bad = list(iter_corpus([src]))
    assert isinstance(doc, Doc) and isinstance(bad, Bad)
    scorer = Scorer(make_vectorset(lm), lm, ScoreConfig())
    ((p,),) = scorer.prepare_chunks([doc])
    assert p.doc is doc  # carried, not re-keyed
    (sd,) = scorer.score_prepared([[p]])
    row = sd.row
    assert (row.doc_id, row.source, row.position) == (doc.doc_id, str(src), "line 1")
    assert row.n_chars == len(doc.text) and row.n_tokens == len(p.ids) > 0
    assert row.n_windows == len(p.windows) and row.is_dialogue
    assert sd.trace is not None and sd.trace.doc_id == doc.doc_id


def test_pairs_and_docs_score_alike(lm: LoadedModel) -> None:
    scorer = Scorer(make_vectorset(lm), lm, ScoreConfig())
    (a,) = scorer.score([("x", STORIES[0])])
    (b,) = scorer.score([Doc("x", STORIES[0])])
    assert a == b and a.source == "" and a.position == ""


def test_prepared_round_trips_as_json(lm: LoadedModel) -> None:
    """What the Ray engine sends between its tokenise and score stages."""
    scorer = Scorer(make_vectorset(lm), lm, ScoreConfig())
    (p,) = scorer.prepare([Doc("c", STORIES[3], "in.jsonl", "line 4")], start_index=3)
    back = Prepared.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p and back.doc == p.doc and back.index == 3 and back.turns


def test_quarantine_record_names_file_row_and_reason() -> None:
    rec = Bad("in.jsonl", "line 2", "invalid JSON: x", "d-1").record()
    assert list(rec) == ["source", "position", "reason", "doc_id"]
    assert rec == {
        "source": "in.jsonl",
        "position": "line 2",
        "reason": "invalid JSON: x",
        "doc_id": "d-1",
    }
    assert Doc.from_record({"shard": 1, **Doc("i", "t", "s", "p").record()}) == Doc(
        "i", "t", "s", "p"
    )
