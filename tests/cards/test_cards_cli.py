"""The card and report commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emocurate.cli import main


def _run(args: list[str]) -> int:
    """Exit status of the CLI (main returns on success, raises SystemExit otherwise)."""
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_card_command_dataset_and_vectors(stages: dict[str, Path], tmp_path: Path) -> None:
    val = tmp_path / "val"
    shutil.copytree(stages["val"], val)
    vec = tmp_path / "vec"
    shutil.copytree(stages["vec"], vec)
    assert (
        _run(["card", str(val / "kept"), "--generation", str(stages["gen"]), "--repo-id", "org/x"])
        == 0
    )
    assert "| fake | fake-model-1 | 30 |" in (val / "kept" / "README.md").read_text()
    assert _run(["card", str(vec), "--training", str(val / "kept")]) == 0
    assert "Emotion vectors for stories260K" in (vec / "README.md").read_text()


def test_report_command(
    stages: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert (
        _run(
            [
                "report",
                "--out",
                str(out),
                "--scores",
                str(stages["scores"]),
                "--emotions",
                "afraid,calm",
            ]
        )
        == 0
    )
    html = out.read_text()
    assert "Text tinted by <b>afraid</b>" in html
    assert _run(["report", "--out", str(out)]) != 0
    assert "give at least one of" in capsys.readouterr().err
    assert _run(["card", str(tmp_path / "missing")]) != 0


def test_every_option_has_help() -> None:
    import typer.main

    from emocurate.cli import app

    group = typer.main.get_command(app)
    for name in ("card", "report", "push"):
        cmd = group.commands[name]  # type: ignore[attr-defined]
        assert cmd.help
        for p in cmd.params:
            assert getattr(p, "help", None), f"{name} {p.name} has no help"
