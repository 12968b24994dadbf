"""The vectors CLI: fit, vectors evaluate, vectors export-gguf, steer."""

from __future__ import annotations

import json

import pytest
from synth import make_stories

from emocurate.cli import main
from emocurate.io import write_records


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_fit_evaluate_export_steer(tmp_path, capsys):
    write_records(tmp_path / "rec", make_stories(8))
    write_records(tmp_path / "test", make_stories(3, seed=5))
    out = tmp_path / "vs"
    assert (
        run(
            [
                "fit",
                str(tmp_path / "rec"),
                "--model",
                "stories260K",
                "--layers",
                "3,4",
                "--skip",
                "10",
                "--batch-tokens",
                "2048",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "held-out accuracy" in capsys.readouterr().out
    assert (
        run(
            [
                "vectors",
                "evaluate",
                str(out),
                "--on",
                str(tmp_path / "test"),
                "--out",
                str(tmp_path / "ev.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "ev.json").read_text())
    assert report["n"] == 12 and report["accuracy"] >= 0.75
    assert (
        run(
            [
                "vectors",
                "export-gguf",
                str(out),
                "--emotion",
                "happy",
                "--out",
                str(tmp_path / "happy.gguf"),
            ]
        )
        == 0
    )
    assert (tmp_path / "happy.gguf").stat().st_size > 0
    assert run(["vectors", "export-gguf", str(out), "--out", str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "angry.gguf",
        "happy.gguf",
        "sad.gguf",
        "scared.gguf",
    ]
    capsys.readouterr()
    assert (
        run(
            [
                "steer",
                str(out),
                "--emotion",
                "happy",
                "--strength",
                "1",
                "--layer",
                "4",
                "--prompt",
                "Once upon a time, Tom was",
                "--max-new-tokens",
                "8",
                "--dose-response",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text.startswith("Once upon a time, Tom was") and "+1.00" in text
    assert "rho" in text and (out / "steering.json").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    write_records(tmp_path / "rec", make_stories(3))
    assert (
        run(["fit", str(tmp_path / "rec"), "--method", "magic", "--out", str(tmp_path / "o")]) == 2
    )
    assert "--method" in capsys.readouterr().err
    assert run(["fit", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "input folder not found" in capsys.readouterr().err
    assert run(["vectors", "evaluate", str(tmp_path), "--on", str(tmp_path / "rec")]) == 2
    assert "not a vector set folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cmd", [["fit"], ["steer"], ["vectors", "evaluate"], ["vectors", "export-gguf"]]
)
def test_every_option_has_help(cmd):
    import typer.main

    from emocurate.cli import app

    command = typer.main.get_command(app)
    for part in cmd:
        assert hasattr(command, "commands")
        command = command.commands[part]
    for param in command.params:
        if param.param_type_name == "option":
            assert param.help, (cmd, param.name)


def test_evaluate_prints_a_summary_table_and_json_on_request(tmp_path, capsys):
    """A person gets a short table (not hundreds of lines of JSON); --json gives the report."""
    write_records(tmp_path / "rec", make_stories(6))
    write_records(tmp_path / "test", make_stories(3, seed=5))
    out = tmp_path / "vs"
    assert (
        run(["fit", str(tmp_path / "rec"), "--layers", "4", "--skip", "10", "--out", str(out)]) == 0
    )
    capsys.readouterr()
    args = ["vectors", "evaluate", str(out), "--on", str(tmp_path / "test")]
    assert run(args) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) <= 25, text
    assert "accuracy" in text and "chance" in text and "95% interval" in text
    for emotion in ("angry", "happy", "sad", "scared"):
        assert any(line.split("│")[1:2] and emotion in line for line in text.splitlines()), emotion
    assert not text.lstrip().startswith("{")
    assert run([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 12 and "confusion" in report
