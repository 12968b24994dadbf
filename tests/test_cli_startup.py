"""CLI start-up loads no model library (issue 20, item 1).

The commands take their option defaults from the config models
(``emocurate/commands/defaults.py``), so building the CLI imports ``emocurate.configs``;
``--help`` and a bad option must still answer without importing torch, transformers or
datasets (seconds of start-up, and a crash where they are not installed).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets")
HELPS = (
    [],
    ["fit"],
    ["score"],
    ["calibrate"],
    ["validate"],
    ["generate", "stories"],
    ["curate"],
)


def test_help_of_every_configured_command_loads_no_model_library() -> None:
    code = (
        "import json, sys\n"
        "from emocurate.cli import main\n"
        f"for path in {HELPS!r}:\n"
        "    try:\n"
        "        main([*path, '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (path, e.code)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.splitlines()[-1]) == []
    assert "--holdout" in res.stdout and "--metrics-device" in res.stdout  # the helps ran
