"""CLI option errors of ``emocurate score``: one line naming the option and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from emocurate.cli import main

from .conftest import write_jsonl


@pytest.mark.parametrize(
    ("args", "option", "problem"),
    [
        (["--window", "4"], "--window", "greater than or equal to 8"),
        (["--limit", "0"], "--limit", "greater than or equal to 1"),
        (["--batch-tokens", "0"], "--batch-tokens", "greater than or equal to 16"),
        (["--shard-size", "0"], "--shard-size", "greater than or equal to 1"),
    ],
)
def test_invalid_score_options_name_the_option(
    args: list[str],
    option: str,
    problem: str,
    tmp_path: Path,
    vs_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 2)
    with pytest.raises(SystemExit) as exc:
        main(["score", str(src), "--vectors", str(vs_dir), "--out", str(tmp_path / "out"), *args])
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert option in lines[0] and problem in lines[0], err
    assert "pydantic.dev" not in err and "Traceback" not in err
    assert not (tmp_path / "out" / "manifest.json").exists()
