"""The score run's shard markers (``_done/shard-XXXXX.json``) as :class:`ShardMarker`.

The marker is what a rerun trusts to skip a shard, so its bytes and its reading are pinned
here without a model: a shard of quarantined rows only needs no forward pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emocurate.artifacts import ShardMarker
from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import read_marker, write_shard
from emocurate.corpus.readers import Bad
from emocurate.errors import ConfigError


def _write(out: Path) -> ShardMarker:
    bad = [Bad(source="a.jsonl", position=f"line {i}", reason="empty text") for i in (1, 2)]
    return write_shard(out, 3, list(bad), [], ["afraid"], ScoreConfig(), "fp1")


def test_the_marker_file_keeps_its_layout_and_reads_back(tmp_path: Path) -> None:
    marker = _write(tmp_path)
    path = tmp_path / "_done" / "shard-00003.json"
    expected = {
        "shard": 3,
        "rows_in": 2,
        "scored": 0,
        "quarantined": 2,
        "tokens": 0,
        "traces": 0,
        "fingerprint": "fp1",
    }
    assert path.read_bytes() == json.dumps(expected).encode()  # the bytes markers always had
    assert read_marker(tmp_path, 3, "fp1") == marker == ShardMarker(**expected)
    assert read_marker(tmp_path, 4, "fp1") is None  # no marker: not finished


def test_a_marker_of_another_run_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(ConfigError, match="different run"):
        read_marker(tmp_path, 3, "fp2")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"shard": 3, "fingerprint": "fp1"}'])
def test_an_unreadable_marker_means_the_shard_is_redone(tmp_path: Path, text: str) -> None:
    _write(tmp_path)
    (tmp_path / "_done" / "shard-00003.json").write_text(text, "utf-8")
    assert read_marker(tmp_path, 3, "fp1") is None
