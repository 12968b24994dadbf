"""The CLI: every option documented, user errors as one line without a traceback."""

from __future__ import annotations

import contextlib
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


@pytest.mark.parametrize(
    "args, needle",
    [
        (["score", "--bogus"], "No such option: --bogus"),
        (["fit"], "Missing option '--out'"),
        (["fit", "--out", "x"], "give a stage folder of records or --records FILE"),
        (["generate", "stories", "--per-topic", "many", "--out", "x"], "--per-topic"),
    ],
)
def test_usage_errors_use_the_one_error_prefix(args, needle):
    """Usage errors read like every other error: one line starting with 'error:'."""
    proc = _run(*args)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith("error: ") and needle in err, err
    assert "Error:" not in err and len(err.splitlines()) == 1, err
    assert "--help" in err  # where to look next


def test_no_error_prefix_other_than_lowercase_in_the_package():
    """No module prints its own 'Error:' (the CLI writes 'error: ...' for every failure)."""
    root = Path(__file__).resolve().parents[1] / "emocurate"
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in root.rglob("*.py")
        for i, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if '"Error:' in line or "'Error:" in line or "[red]Error" in line
    ]
    assert not offenders, offenders


def _example_lines(help_text: str) -> list[str]:
    lines = help_text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "Example:" and i + 1 < len(lines):
            out.append(lines[i + 1].split("#")[0].strip())
    return out


def test_every_command_help_has_an_example_that_parses(capsys):
    """Each command's --help ends with an example of itself whose options really exist."""
    import shlex

    root = typer.main.get_command(app)
    for path, cmd in _walk(root):
        with contextlib.suppress(SystemExit):
            main([*path, "--help"])
        out = capsys.readouterr().out
        examples = _example_lines(out)
        assert examples, f"'emocurate {' '.join(path)} --help' has no 'Example:'"
        args = shlex.split(examples[0])
        assert args[0] == "emocurate"
        if hasattr(cmd, "commands"):  # a group: its example runs one of its commands
            assert tuple(args[1 : 1 + len(path)]) == path and args[1 + len(path)] in cmd.commands
            continue
        assert tuple(args[1 : 1 + len(path)]) == path, (path, examples[0])
        cmd.make_context(" ".join(path), args[1 + len(path) :])  # the options parse


def test_generate_neutral_lists_only_options_that_apply(capsys):
    with contextlib.suppress(SystemExit):
        main(["generate", "neutral", "--help"])
    out = capsys.readouterr().out
    for opt in ("--emotions", "--person-emotions", "--assistant-emotions", "--pairing"):
        assert opt not in out, opt
    assert "topic area" in out
    proc = _run("generate", "neutral", "--emotions", "happy", "--out", "x", "--dry-run")
    assert proc.returncode != 0 and "--emotions does not apply to neutral" in proc.stderr


def test_one_default_model_name_in_help_config_readme_and_examples():
    from emocurate.configs import GenerateConfig

    default = GenerateConfig.model_fields["model"].default
    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", *sorted((root / "examples").glob("*.yaml"))]
    import re

    for p in texts:
        for name in re.findall(r"claude-sonnet-[0-9-]+", p.read_text("utf-8")):
            assert name == default, f"{p.name} names {name}, the default is {default}"
    proc = _run("generate", "stories", "--help")
    assert default in proc.stdout
