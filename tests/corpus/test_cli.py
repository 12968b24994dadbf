"""CLI option errors of ``emocurate score``: one line naming the option and the problem."""

from __future__ import annotations

import json
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


def _score(
    src: list[Path], vs_dir: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int | str | None, list[str]]:
    """Run ``score`` in-process: the exit code (0 when it returns) and the stderr lines."""
    code: int | str | None = 0
    try:
        main(["score", *map(str, src), "--vectors", str(vs_dir), "--out", str(out), *extra])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, [x for x in err.strip().splitlines() if x.strip()]


def test_empty_input_ends_non_zero_with_one_line(
    tmp_path: Path, vs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    code, lines = _score([tmp_path / "empty.jsonl"], vs_dir, tmp_path / "out", capsys)
    assert code not in (0, None)
    assert len(lines) == 1 and lines[0].startswith("error:") and "empty.jsonl" in lines[0]


def test_nothing_scored_ends_non_zero_with_the_text_field_hint(
    tmp_path: Path, vs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "content": f"Tom was happy {i}."}) + "\n" for i in range(2))
    )
    out = tmp_path / "out"
    code, lines = _score([src], vs_dir, out, capsys)
    assert code not in (0, None)
    assert len(lines) == 1, lines
    assert "scored 0 of 2 rows" in lines[0] and "--text-field content" in lines[0]
    m = json.loads((out / "manifest.json").read_text())  # what was quarantined stays inspectable
    assert m["quarantined"] == 2
    code, lines = _score([src], vs_dir, tmp_path / "out2", capsys, "--text-field", "content")
    assert code in (0, None) and "scored 2 of 2 rows" in " ".join(lines)


def test_csv_is_scored_row_by_row(
    tmp_path: Path, vs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "c.csv"
    src.write_text('id,text\n1,"Tom was happy, he smiled."\n2,"Ben was sad."\n3,"Lily was calm."\n')
    out = tmp_path / "out"
    code, lines = _score([src], vs_dir, out, capsys, "--window", "64")
    assert code in (0, None), lines
    m = json.loads((out / "manifest.json").read_text())
    assert (m["rows_in"], m["scored"]) == (3, 3)


def test_folder_skips_documentation_and_lists_it_in_the_manifest(
    tmp_path: Path, vs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "corpus"
    d.mkdir()
    write_jsonl(d / "a.jsonl", 2)
    (d / "PROVENANCE.md").write_text("# Provenance\nScraped in 2024 from a forum.\n")
    out = tmp_path / "out"
    code, lines = _score([d], vs_dir, out, capsys, "--window", "64")
    assert code in (0, None), lines
    m = json.loads((out / "manifest.json").read_text())
    assert (m["rows_in"], m["scored"]) == (2, 2)
    assert [Path(s["path"]).name for s in m["skipped"]] == ["PROVENANCE.md"]


def test_edited_corpus_does_not_resume_into_a_mix(
    tmp_path: Path, vs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 3)
    out = tmp_path / "out"
    args = ("--window", "64", "--shard-size", "1")
    code, lines = _score([src], vs_dir, out, capsys, *args)
    assert code in (0, None), lines
    src.write_bytes(src.read_bytes())  # same bytes, new mtime: resumes
    code, lines = _score([src], vs_dir, out, capsys, *args)
    assert code in (0, None), lines
    first = json.loads((out / "manifest.json").read_text())
    assert first["resumed_shards"] == 3
    text = src.read_text()
    src.write_text(text.replace("(1)", "(7)"))  # same path and size, other content
    code, lines = _score([src], vs_dir, out, capsys, *args)
    assert code not in (0, None)
    assert len(lines) == 1 and "different run" in lines[0], lines
    assert json.loads((out / "manifest.json").read_text()) == first
