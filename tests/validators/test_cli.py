"""``emocurate validate``: funnel table, options with help, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from emocurate.cli import main

from .conftest import make_story, write_stage
from .test_pipeline import stories


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_validate_prints_funnel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stage(tmp_path / "in", stories())
    assert run(["validate", str(folder), "--out", str(tmp_path / "out"), "--per-emotion"]) == 0
    out = capsys.readouterr().out
    assert "validation funnel: 3 of 8 kept" in out
    for step in ("input", "rules", "leakage", "dedup", "too_short", "per emotion"):
        assert step in out
    assert (tmp_path / "out" / "kept" / "data" / "story.parquet").exists()


def test_options_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stage(tmp_path / "in", [make_story()])
    assert (
        run(["validate", str(folder), "--out", str(tmp_path / "o"), "--validators", "rules,vibes"])
        == 2
    )
    err = capsys.readouterr().err
    assert "unknown validator" in err and "Traceback" not in err
    assert run(["validate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "input folder not found" in capsys.readouterr().err
    assert (
        run(["validate", str(folder), "--out", str(tmp_path / "o"), "--validators", "judge"]) == 2
    )
    assert "--judge-backend" in capsys.readouterr().err
    assert (
        run(["validate", str(folder), "--out", str(tmp_path / "o"), "--dedup-threshold", "1.5"])
        == 2
    )
    assert "dedup-threshold" in capsys.readouterr().err


def test_help_mentions_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", "--help"]) == 0
    text = capsys.readouterr().out
    for opt in (
        "--validators",
        "--judge-backend",
        "--judge-model",
        "--base-url",
        "--probe-model",
        "--dedup-threshold",
        "--reference",
        "--min-words",
        "--max-words",
        "--seed",
        "--no-cache",
    ):
        assert opt in text
