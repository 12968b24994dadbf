"""Option defaults read from the config models, so the command line cannot drift from them.

Every ``typer.Option`` whose value becomes a config field takes its default from here (what a
YAML config or the library does with the field left out is what the CLI does without the
option). Only torch-free config modules may be imported here: every command imports this at
start-up (``emocurate.configs`` is torch-free; ``tests/test_configs.py`` checks it).
``tests/test_cli_defaults.py`` checks the CLI against every config model independently, by
reading the models' fields, not these helpers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from emocurate.configs import FitConfig, GenerateConfig, ScoreConfig, ValidateConfig


def config_default(model: type[BaseModel], field: str) -> Any:
    """The default of ``model.field``: its ``default``, or a fresh ``default_factory()`` value
    (a list or model default is built anew, never shared between commands)."""
    info = model.model_fields[field]
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return info.default


def generate_default(field: str) -> Any:
    """The :class:`GenerateConfig` default of ``field`` (``emocurate generate`` options)."""
    return config_default(GenerateConfig, field)


def fit_default(field: str) -> Any:
    """The :class:`FitConfig` default of ``field`` (``emocurate fit`` options)."""
    return config_default(FitConfig, field)


def score_default(field: str) -> Any:
    """The :class:`ScoreConfig` default of ``field`` (``emocurate score``/``calibrate`` options)."""
    return config_default(ScoreConfig, field)


def validate_default(field: str) -> Any:
    """The :class:`ValidateConfig` default of ``field`` (``emocurate validate`` options)."""
    return config_default(ValidateConfig, field)
