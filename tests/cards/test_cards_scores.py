"""The report reads score rows through the typed row (CorpusScore), never by guessing a key."""

from __future__ import annotations

import cards_fixtures as fx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emocurate.cards.scores import read_docs
from emocurate.errors import InputError
from emocurate.io import write_table

_FLAG = {"kind": "unresolved_end", "start": 1, "end": 3, "severity": 1.0, "evidence": "w1"}


def _rewrite(scores, edit):
    """Apply ``edit`` to every row of the scores shard and write it back."""
    path = scores / "data" / "shard-00000.parquet"
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        edit(r)
    write_table(path, pa.Table.from_pylist(rows))


def test_score_rows_read_through_the_typed_row(tmp_path):
    scores = fx.make_scores(tmp_path / "scores", n_docs=3)
    docs = read_docs(scores)
    assert [d.doc_id for d in docs] == ["doc-000", "doc-001", "doc-002"]
    assert docs[1].n_tokens == 47 and docs[1].source == "sample.jsonl"
    assert docs[1].dominant == [fx.EMOTIONS[1]] and docs[1].text == ""
    assert docs[1].metrics["valence_mean"] == pytest.approx(0.25)
    # a curated folder made with --corpus adds the text column
    _rewrite(scores, lambda r: r.update(text=f"Once upon {r['doc_id']}."))
    assert read_docs(scores)[2].text == "Once upon doc-002."


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda r: r.update(n_tokens="many"), "n_tokens"),
        (lambda r: r.pop("n_tokens"), "n_tokens"),
        (lambda r: r["flags"][0].update(start="x"), "flags.0.start"),
    ],
)
def test_a_malformed_score_row_is_one_line_naming_the_file(tmp_path, edit, field):
    scores = fx.make_scores(tmp_path / "scores", n_docs=3)
    _rewrite(scores, lambda r: (r.update(flags=[dict(_FLAG)]), edit(r)))
    with pytest.raises(InputError, match=rf"data: document doc-000: field '{field}'") as err:
        read_docs(scores)
    assert "\n" not in str(err.value)
