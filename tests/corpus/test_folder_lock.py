"""One writer per output folder for `score` and `fit` too (issue 19, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emocurate.io import folder_lock

from .conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "emocurate.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize("command", ["score", "fit"])
def test_a_second_writer_is_refused_with_the_holders_pid(
    command: str, vs_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    if command == "score":
        args = ["score", str(write_jsonl(tmp_path / "c.jsonl", 4)), "--vectors", str(vs_dir)]
        args += ["--out", str(out), "--z-threshold", "2"]
    else:
        args = ["fit", "--records", "bundled:scenarios", "--model", "stories260K"]
        args += ["--out", str(out), "--holdout", "0"]
    with folder_lock(out):  # this test process holds the folder, as a running job would
        res = _cli(*args)
    assert res.returncode == 2, res.stderr
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and f"pid {os.getpid()}" in err[0], res.stderr
    assert not (out / "data").exists() and not (out / "vectorset.json").exists()
