"""The README's CLI tour runs offline from a clean checkout, top to bottom, exactly as written.

The block fenced as ```` ```bash tour ```` is extracted and each command is run in a fresh folder
holding a copy of ``examples/`` (what a checkout's root has that the tour reads), through
``python -m emocurate.cli``. Hosted-API lines carry ``--dry-run``; the API base URLs point at a
closed local port and no key is set, so a line that tried the network would fail here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main

ROOT = Path(__file__).resolve().parents[1]
HOSTED = ("anthropic", "openai")


def tour_commands(readme: Path = ROOT / "README.md") -> list[list[str]]:
    """The tour's commands as argument lists (continuations joined, comments dropped)."""
    text = readme.read_text("utf-8")
    start = text.index("```bash tour\n") + len("```bash tour\n")
    block = text[start : text.index("\n```", start)]
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        args = shlex.split(line, comments=True)
        if args:
            commands.append(args)
    return commands


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_tour_is_well_formed():
    """Fast check: every line is an emocurate command whose options exist; hosted lines dry-run with a budget or no price."""
    from emocurate.cli import app

    root = typer.main.get_command(app)
    commands = tour_commands()
    assert len(commands) >= 15
    for args in commands:
        assert args[0] == "emocurate", args
        cmd, rest, path = root, args[1:], []
        while hasattr(cmd, "commands") and rest and rest[0] in cmd.commands:
            cmd = cmd.commands[rest[0]]
            path.append(rest.pop(0))
        assert not hasattr(cmd, "commands"), f"not a command: {args}"
        cmd.make_context(" ".join(path), list(rest))  # raises on an unknown option or a bad value
        assert not any("<" in a or "YOUR" in a.upper() for a in args), f"placeholder in {args}"
        if path and path[0] == "generate" and _option(args, "--backend") in HOSTED:
            assert "--dry-run" in args, f"hosted line without --dry-run: {args}"
            paid = "--base-url" not in args  # a local OpenAI-compatible server costs nothing
            assert not paid or _option(args, "--budget-usd"), (
                f"hosted line without a budget: {args}"
            )


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp / "hf-home"),
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        # a closed port: any request the tour tried to send would fail, not reach a provider
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        NO_COLOR="1",
    )
    return env


@pytest.mark.slow
def test_readme_tour_runs_offline_top_to_bottom(tmp_path: Path):
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    env = _env(tmp_path)
    timings = []
    for args in tour_commands():
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "emocurate.cli", *args[1:]],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        timings.append((time.perf_counter() - t0, " ".join(args[:3])))
        assert proc.returncode == 0, (
            f"README tour line failed ({proc.returncode}): {shlex.join(args)}\n{proc.stderr[-2000:]}"
        )
        if "--dry-run" in args and args[1] == "generate":
            assert "planned_requests" in proc.stdout
    # what the tour promises exists, and the pipeline wrote where it was run, not into examples/
    for rel in (
        "runs/vectors/vectors.safetensors",
        "runs/scores",
        "runs/curated",
        "report.html",
        "happy.gguf",
        "runs/hub-tree/README.md",
        "runs/pipeline/report/report.html",
    ):
        assert (work / rel).exists(), rel
    assert not (work / "examples" / "runs").exists()
    slowest = sorted(timings, reverse=True)[:3]
    print("slowest tour lines:", [(round(s, 1), c) for s, c in slowest])
