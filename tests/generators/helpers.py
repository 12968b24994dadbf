"""Helpers shared by the generator tests: record comparison and a killable generation child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emocurate.configs import GenerateConfig
from emocurate.records import Story
from tests.fakes.llm_servers import fake_anthropic_server, fake_openai_server

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from emocurate.configs import GenerateConfig
from emocurate.generators.run import run_generation
cfg = GenerateConfig.model_validate_json(sys.argv[1])
run_generation(cfg, sys.argv[2])
"""


SERVERS = {
    "anthropic": (fake_anthropic_server, "claude-sonnet-4-6"),
    "openai": (fake_openai_server, "gpt-4o-mini"),
}
"""Fake server factory and model name per hosted backend."""


def hosted_cfg(flavor: str, base_url: str, **kw: object) -> GenerateConfig:
    """A small story run against a fake server: 3 emotions x 2 topics x 8, 4 per request."""
    base: dict[str, object] = dict(
        kind="stories",
        backend=flavor,
        model=SERVERS[flavor][1],
        base_url=base_url,
        emotions="happy,afraid,calm",
        topics="2",
        per_topic=8,
        per_request=4,
        progress=False,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    return GenerateConfig.model_validate({**base, **kw})


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
