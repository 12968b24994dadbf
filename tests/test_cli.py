"""The CLI: every option documented, user errors as one line without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from emocurate.cli import app, main


def _walk(cmd, path: tuple[str, ...] = ()):
    yield path, cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


def test_every_command_and_option_has_help():
    root = typer.main.get_command(app)
    seen = 0
    for path, cmd in _walk(root):
        if path:
            assert (cmd.help or "").strip(), f"command {' '.join(path)} has no help"
        for p in cmd.params:
            if p.name in {"help"}:
                continue
            text = getattr(p, "help", None)
            assert text and text.strip(), (
                f"{' '.join(path) or 'emocurate'}: parameter '{p.name}' has no help"
            )
        seen += 1
    assert seen >= 10  # the whole tree was walked, not just the root


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emocurate.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_runs_for_each_subcommand(capsys):
    root = typer.main.get_command(app)
    for path, cmd in _walk(root):
        try:
            main([*path, "--help"])
        except SystemExit as exc:
            assert exc.code in (0, None)
        out = capsys.readouterr().out
        assert "Usage:" in out
        for p in cmd.params:
            if (
                getattr(p, "param_type_name", "") == "option"
                and p.name != "help"
                and not getattr(p, "hidden", False)
            ):
                assert p.opts[0] in out, f"{path}: {p.opts[0]} missing from --help"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["demo", "--out", "/proc/emocurate-cannot-write/place"], "cannot write to output folder"),
        (["emotions", "--subset", "grumpyish"], "unknown emotion 'grumpyish'"),
        (["emotions", "--subset", "nosuchsubset,happy"], "unknown emotion 'nosuchsubset'"),
        (["run", "/nonexistent/pipeline.yaml"], "pipeline file not found"),
    ],
)
def test_user_errors_are_one_line(args, needle):
    proc = _run(*args)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert needle in err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_invalid_pipeline_field_is_one_line(tmp_path: Path):
    bad = tmp_path / "p.yaml"
    bad.write_text("out: x\nfit:\n  method: telepathy\n")
    proc = _run("run", str(bad))
    assert proc.returncode != 0
    assert "invalid field 'fit.method'" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad.write_text("- just\n- a list\n")
    proc = _run("run", str(bad))
    assert "must be a YAML mapping" in proc.stderr


def test_bad_option_is_a_usage_error_not_a_crash():
    proc = _run("score", "--bogus")
    assert proc.returncode == 2
    assert "No such option: --bogus" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_traceback():
    proc = _run("--debug", "emotions", "--subset", "grumpyish")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
