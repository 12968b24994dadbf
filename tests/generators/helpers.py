"""Helpers shared by the generator tests: record comparison and a killable generation child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emocurate.generators.run import GenerateConfig
from emocurate.records import Story

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from emocurate.generators.run import GenerateConfig, run_generation
cfg = GenerateConfig.model_validate_json(sys.argv[1])
run_generation(cfg, sys.argv[2])
"""


def comparable(stories: list[Story]) -> list[dict]:
    """Stories as dicts without the fields that differ between two identical runs."""
    out = []
    for s in stories:
        d = s.model_dump(mode="json")
        d["provenance"].pop("created")
        d["provenance"].pop("cache_hit")
        out.append(d)
    return out


def start_generation(cfg: GenerateConfig, out: Path) -> subprocess.Popen[bytes]:
    """``run_generation(cfg, out)`` in a child process, so a test can ``kill -9`` it mid-run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, cfg.model_dump_json(), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
