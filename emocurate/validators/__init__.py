"""Validators: label-quality checks over generated records, and the validate stage.

Each validator has a ``name`` and ``check(records) -> list[Verdict]``; :func:`validate` runs
them over a stage folder and writes ``kept/``, ``rejected/`` and the funnel manifest.
"""

from emocurate.configs import DedupConfig, LeakageConfig, RulesConfig, ValidateConfig
from emocurate.validators.base import LabelItem, Validator, label_items
from emocurate.validators.dedup import DedupValidator
from emocurate.validators.leakage import LeakageValidator, find_leaks
from emocurate.validators.pipeline import validate
from emocurate.validators.rules import RulesValidator

__all__ = [
    "DedupConfig",
    "DedupValidator",
    "LabelItem",
    "LeakageConfig",
    "LeakageValidator",
    "RulesConfig",
    "RulesValidator",
    "ValidateConfig",
    "Validator",
    "find_leaks",
    "label_items",
    "validate",
]
