"""Option defaults read from the config models, so the command line cannot drift from them.

Every ``typer.Option`` whose value becomes a config field takes its default from here (what a
YAML config or the library does with the field left out is what the CLI does without the
option). Only torch-free config modules may be imported here: every command imports this at
start-up. ``tests/test_cli_defaults.py`` checks the CLI against every config model, including
those (fit, score, validate) whose models cannot be imported here yet.
"""

from __future__ import annotations

from typing import Any

from emocurate.configs import GenerateConfig


def generate_default(field: str) -> Any:
    """The :class:`GenerateConfig` default of ``field`` (``emocurate generate`` options)."""
    return GenerateConfig.model_fields[field].default
