"""Model schemas are built on first use, not on import (start-up of every command)."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json
import emocurate.cli  # what every command imports before it runs
from emocurate import artifacts, records
names = [n for n in dir(artifacts) if isinstance(getattr(artifacts, n), type)
         and issubclass(getattr(artifacts, n), records.Model) and getattr(artifacts, n) is not records.Model]
built = [n for n in names if getattr(artifacts, n).__pydantic_complete__]
m = artifacts.ScoreSummary(docs_flagged=2)  # first use builds the schema and validates
print(json.dumps({"n": len(names), "built": built, "after": artifacts.ScoreSummary.__pydantic_complete__,
                  "value": m.docs_flagged}))
"""


def test_cli_import_defers_model_schemas_to_first_use() -> None:
    """Building ~100 pydantic schemas at import cost ~0.2 s before a command's first batch."""
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n"] >= 10 and out["built"] == []
    assert out["after"] is True and out["value"] == 2


def test_deferred_models_still_validate_strictly() -> None:
    import pytest
    from pydantic import ValidationError

    from emocurate.artifacts import ScoreSummary

    with pytest.raises(ValidationError):
        ScoreSummary(docs_flagged=1, not_a_field=3)  # type: ignore[call-arg]
    assert ScoreSummary.model_validate({"docs_flagged": "4"}).docs_flagged == 4
