"""Dump every command's ``--help`` and parameter table, for before/after identity checks.

A refactor of ``emocurate/commands/`` must not change the CLI: run this on both
trees and diff the outputs. Usage: ``python scripts/dump_cli.py > cli.txt``.
"""

from __future__ import annotations

from typing import Any

import typer.main
from typer.testing import CliRunner

from emocurate.cli import app

FIELDS = (
    "name",
    "opts",
    "secondary_opts",
    "default",
    "required",
    "type",
    "multiple",
    "nargs",
    "help",
    "is_flag",
    "hidden",
    "envvar",
    "show_default",
    "count",
    "flag_value",
)


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    found = [(path, cmd)]
    if hasattr(cmd, "commands"):  # a group (typer vendors click: match by shape)
        for name in sorted(cmd.commands):
            found.extend(_walk(cmd.commands[name], [*path, name]))
    return found


def main() -> None:
    runner = CliRunner()
    root = typer.main.get_command(app)
    for path, cmd in _walk(root, []):
        print(f"===== emocurate {' '.join(path)}")
        result = runner.invoke(app, [*path, "--help"], terminal_width=100)
        print(f"exit={result.exit_code}")
        print(result.output)
        for p in cmd.params:
            row = {name: repr(getattr(p, name, None)) for name in FIELDS}
            print(f"  param {row}")


if __name__ == "__main__":
    main()
