"""Billed vs ledger vs budget when a user stops a run (issue 19), for both hosted backends.

Runs the real CLI (``python -m emocurate.cli generate stories``, defaults but for the plan and
``--budget-usd``) in a subprocess against the fake Anthropic/OpenAI servers of
``tests/fakes/llm_servers.py`` (every answer delayed, every billed answer logged, billed even
when its client is gone). Two scenarios per backend, each on a fresh output folder and server:

* ``kill9``: three ``kill -9`` at random points while requests are in flight, then a full run;
* ``ctrl_c``: two SIGINTs (Ctrl-C) while requests are in flight, then a full run.

Prints one JSON object: per scenario the provider-billed USD, the folder's ledger USD, the
budget, the requests the server answered vs distinct requests, and the exit statuses.
Invariant: billed <= budget and ledger >= billed.

    PYTHONPATH=. python bench/money_kill.py [--seed 19] [--repeats 2] > bench/results/money_kill.json

Each repeat runs both budgets of :data:`BUDGETS`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emocurate.generators.ledger import SPEND_FILE, read_spend  # noqa: E402
from emocurate.generators.pricing import find_price  # noqa: E402
from tests.fakes.llm_servers import fake_anthropic_server, fake_openai_server  # noqa: E402

MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4.1"}
SERVE = {"anthropic": fake_anthropic_server, "openai": fake_openai_server}
BUDGETS = {
    "tight": {"anthropic": 0.10, "openai": 0.05},
    "loose": {"anthropic": 0.30, "openai": 0.15},
}
"""``tight``: the issue's budget (one kill's requests in flight, at worst case, use most of it);
``loose``: room for all three kills to land on a running run."""


def cli(flavor: str, url: str, out: Path, budget: float) -> subprocess.Popen[str]:
    args = [
        "generate", "stories", "--backend", flavor, "--model", MODELS[flavor],
        "--base-url", url, "--emotions", "happy,afraid,calm", "--topics", "2",
        "--per-topic", "4", "--per-request", "2", "--budget-usd", str(budget),
        "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k"}
    return subprocess.Popen(
        [sys.executable, "-m", "emocurate.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def scenario(
    flavor: str, sig: signal.Signals, stops: int, rng: random.Random, budget: float
) -> dict[str, Any]:
    price = find_price(flavor, MODELS[flavor])[0]
    codes: list[int] = []
    with tempfile.TemporaryDirectory() as tmp, SERVE[flavor](latency_s=0.4) as srv:
        out = Path(tmp) / "o"
        for _ in range(stops):
            target = srv.stats.calls + rng.randint(1, 5)
            child = cli(flavor, srv.base_url, out, budget)
            while srv.stats.calls < target and child.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            child.send_signal(sig)
            child.communicate(timeout=60)
            codes.append(child.returncode)
        time.sleep(0.6)
        final = cli(flavor, srv.base_url, out, budget)
        final.communicate(timeout=300)
        codes.append(final.returncode)
        time.sleep(0.6)  # answers to killed clients are still billed
        billed = srv.stats.billed_usd(price)
        spend = read_spend(out / "cache" / SPEND_FILE)
        answered = len(srv.stats.billed)
        distinct = len({b["key"] for b in srv.stats.billed})
    return {
        "backend": flavor,
        "signal": sig.name,
        "stops": stops,
        "budget_usd": budget,
        "billed_usd": round(billed, 6),
        "ledger_usd": round(spend.usd_total, 6),
        "ledger_in_flight_usd": round(spend.in_flight_usd, 6),
        "billed_answers": answered,
        "distinct_requests": distinct,
        "exit_codes": codes,
        "ok": billed <= budget + 1e-9 and spend.usd_total >= billed - 1e-9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--repeats", type=int, default=1, help="seeds seed..seed+repeats-1")
    a = ap.parse_args()
    rows = []
    for k in range(a.repeats):
        rng = random.Random(a.seed + k)
        for name, budgets in BUDGETS.items():
            for flavor in ("anthropic", "openai"):
                tag = {"seed": a.seed + k, "budget": name}
                rows.append(scenario(flavor, signal.SIGKILL, 3, rng, budgets[flavor]) | tag)
                rows.append(scenario(flavor, signal.SIGINT, 2, rng, budgets[flavor]) | tag)
    print(
        json.dumps(
            {
                "bench": "money_kill",
                "invariant": "billed <= budget and ledger >= billed",
                "all_ok": all(r["ok"] for r in rows),
                "runs": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
