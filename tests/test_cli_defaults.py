"""The CLI's option defaults are the config models' defaults (issue 20: options derived from
the config models, so the command line cannot drift from what a YAML config or the library
does when a field is left out)."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main

from emocurate.cli import app

GENERATE_FIELDS = {  # option parameter -> GenerateConfig field (same default)
    "backend": "backend",
    "model": "model",
    "base_url": "base_url",
    "topics": "topics",
    "per_topic": "per_topic",
    "per_request": "per_request",
    "concurrency": "concurrency",
    "rpm": "rpm",
    "input_tpm": "input_tpm",
    "output_tpm": "output_tpm",
    "batch": "batch",
    "batch_poll": "batch_poll_s",
    "budget_usd": "budget_usd",
    "dry_run": "dry_run",
    "cache": "cache",
    "seed": "seed",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "max_retries": "max_retries",
    "timeout_s": "timeout_s",
    "price_input": "price_input",
    "price_output": "price_output",
    "device": "device",
    "prompt_style": "prompt_style",
    "replace": "replace",
    "person_emotions": "person_emotions",
    "assistant_emotions": "assistant_emotions",
    "pairing": "pairing",
}
FIT_FIELDS = {
    "model": "model",
    "layers": "layers",
    "method": "method",
    "skip": "skip",
    "short": "short",
    "pooling": "pooling",
    "batch_tokens": "batch_tokens",
    "neutral_variance": "neutral_variance",
    "standardize": "standardize",
    "holdout": "holdout",
    "seed": "seed",
    "eval_seeds": "eval_seeds",
    "device": "device",
    "dtype": "dtype",
    "records_file": "records",
    "text_field": "text_field",
    "label_field": "label_field",
    "id_field": "id_field",
    "data_licence": "data_licence",
}
SCORE_FIELDS = {
    "text_field": "text_field",
    "id_field": "id_field",
    "engine": "engine",
    "address": "address",
    "ray_actors": "ray_actors",
    "batch_tokens": "batch_tokens",
    "window": "window",
    "stride": "stride",
    "device": "device",
    "model": "model",
    "limit": "limit",
    "smooth": "smooth",
    "shard_size": "shard_size",
    "layer": "layer",
    "regulation_vectors": "regulation_vectors",
    "threshold": "fpr",
    "attributes": "attributes",
    "metrics_device": "metrics_device",
}
CALIBRATE_FIELDS = {  # calibrate builds a ScoreConfig from these (as in score)
    "text_field": "text_field",
    "smooth": "smooth",
    "layer": "layer",
    "window": "window",
    "device": "device",
    "model": "model",
}
VALIDATE_FIELDS = {  # options whose None means "the config's default" are left out
    "judge_backend": "judge_backend",
    "judge_model": "judge_model",
    "base_url": "base_url",
    "probe_model": "probe_model",
    "seed": "seed",
}


def _command(*path: str) -> Any:
    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _cli_defaults(*path: str) -> dict[str, Any]:
    return {p.name: p.default for p in _command(*path).params}


def _model_default(model: Any, field: str) -> Any:
    info = model.model_fields[field]
    return info.default_factory() if info.default_factory is not None else info.default


def _drift(path: tuple[str, ...], model: Any, fields: dict[str, str]) -> dict[str, Any]:
    cli = _cli_defaults(*path)
    assert set(fields) <= set(cli), set(fields) - set(cli)
    return {
        f"--{opt.replace('_', '-')}": (cli[opt], _model_default(model, field))
        for opt, field in fields.items()
        if cli[opt] != _model_default(model, field)
    }


@pytest.mark.parametrize("kind", ["stories", "dialogues", "neutral", "regulation"])
def test_generate_defaults_are_the_config_defaults(kind: str) -> None:
    from emocurate.commands.generate import DEFAULT_EMOTIONS
    from emocurate.configs import GenerateConfig

    assert _drift(("generate", kind), GenerateConfig, GENERATE_FIELDS) == {}
    cli = _cli_defaults("generate", kind)
    assert _model_default(GenerateConfig, "emotions") == DEFAULT_EMOTIONS  # --emotions unset
    assert (not cli["no_prompt_cache"]) == _model_default(GenerateConfig, "prompt_cache")


def test_fit_defaults_are_the_config_defaults() -> None:
    from emocurate.configs import FitConfig

    assert _drift(("fit",), FitConfig, FIT_FIELDS) == {}


def test_score_and_calibrate_defaults_are_the_config_defaults() -> None:
    from emocurate.configs import MetricConfig, ScoreConfig

    assert _drift(("score",), ScoreConfig, SCORE_FIELDS) == {}
    assert _drift(("calibrate",), ScoreConfig, CALIBRATE_FIELDS) == {}
    cli = _cli_defaults("score")
    assert cli["z_threshold"] is None and _model_default(ScoreConfig, "z_thresholds") is False
    assert _model_default(ScoreConfig, "metrics") == MetricConfig()


def test_validate_defaults_are_the_config_defaults() -> None:
    from emocurate.configs import ValidateConfig

    assert _drift(("validate",), ValidateConfig, VALIDATE_FIELDS) == {}
    cli = _cli_defaults("validate")
    assert cli["validators"].split(",") == _model_default(ValidateConfig, "validators")
    assert (not cli["no_cache"]) == _model_default(ValidateConfig, "cache")
