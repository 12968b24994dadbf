"""The stage configs live in one torch-free module (issue 20, item 1).

Reading a pipeline file, checking a CLI option or reading a manifest's ``config`` must not load
a model library, so ``emocurate.configs`` (and the pipeline-file module built on it) is imported
in a fresh interpreter and the heavy libraries must be absent afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "datasets")


@pytest.mark.parametrize("module", ["emocurate.configs", "emocurate.config"])
def test_the_config_modules_load_no_model_library(module: str) -> None:
    code = (
        "import json, sys\n"
        f"import {module}\n"
        "from emocurate.configs import FitConfig, GenerateConfig, ScoreConfig, ValidateConfig\n"
        "FitConfig(method='pca'); GenerateConfig(kind='stories'); ScoreConfig(); ValidateConfig()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout) == []


def test_the_builtin_fit_methods_are_the_registry() -> None:
    """Before ``emocurate.vectors.fit`` loads, ``FitConfig`` accepts the built-in names; they
    must be exactly what that module registers, in its order."""
    from emocurate.configs import BUILTIN_FIT_METHODS
    from emocurate.vectors.fit import AGGREGATORS

    assert tuple(AGGREGATORS) == BUILTIN_FIT_METHODS


def test_fit_methods_before_the_fit_module_loads() -> None:
    code = (
        "import sys\n"
        "from pydantic import ValidationError\n"
        "from emocurate.configs import FitConfig\n"
        "assert FitConfig(method='logistic').method == 'logistic'\n"
        "try:\n"
        "    FitConfig(method='magic')\n"
        "except ValidationError as e:\n"
        "    print(e.errors()[0]['msg'])\n"
        "assert 'emocurate.vectors.fit' not in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "Input should be 'mean_diff', 'pca' or 'logistic'"
