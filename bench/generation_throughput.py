"""Generation engine benchmark: rate-limit utilisation and billed tokens per story.

1. Throughput: 1,000 requests through the real Anthropic SDK to a fake server that answers
   after 300 ms, with a 3,000 requests/min client limit (also announced in the server's
   headers). Achieved rate = requests / (last call - first call) as seen by the server. The
   sequential baseline runs 40 requests one at a time and is extrapolated to 1,000 (a full
   sequential run would take ~5 minutes and tell nothing more).
2. Output tokens/min: 60 requests with ``max_tokens`` 4,000 whose answers use a fifth of it
   (800 tokens, as the server counts them), 300 ms latency, a 120,000 output-tokens/min client
   limit (``--output-tpm``; one second's burst is 2,000 tokens, less than one request's
   ``max_tokens``). Achieved = output tokens of the calls sent between the first and the last
   call / that span, as seen by the server (the same measure as the RPM figure). Goal >= 0.9.
3. Billed tokens per accepted story: the defaults (12 stories per request + prompt caching of
   the shared system prompt) vs one story per request without caching, same stories planned,
   answers of realistic length (~180 words per story). Tokens are counted by the fake server
   (4 characters per token) exactly as a provider bills them: input + output + cache writes +
   cache reads. USD at the Sonnet list price is reported too.

Run: python bench/generation_throughput.py   (prints JSON, writes bench/results/generation_throughput.json)

Local models (``--local``, a separate run; writes bench/results/generation_throughput_local.json):
simple-style story requests (the plan of ``generate stories --prompt-style simple``) through the
engine, for the transformers backend at several batch sizes (output tokens / wall second, the
first batch's prefill included; batch 1 = one request at a time) and, with ``--base-url``, for
an OpenAI-compatible server (llama.cpp's ``llama_cpp.server`` serving the same GGUF) through
emocurate's openai backend at ``--server-concurrency``. Threads: ``--threads`` (torch) and
the server's own ``--n_threads``. The machine's load average is recorded beside the figures.

  python bench/generation_throughput.py --local --threads 2 --batches 1,8,24
  python bench/generation_throughput.py --local --batches 8 --base-url http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANTHROPIC_API_KEY", "bench-key-not-real")

from emocurate.configs import GenerateConfig  # noqa: E402
from emocurate.generators.backends import make_backend  # noqa: E402
from emocurate.generators.backends.base import ChatRequest, Message  # noqa: E402
from emocurate.generators.backends.fake import sample_text  # noqa: E402
from emocurate.generators.engine import Engine, EngineConfig  # noqa: E402
from emocurate.generators.run import run_generation  # noqa: E402
from tests.fakes.llm_servers import fake_anthropic_server, request_key  # noqa: E402

MODEL = "claude-sonnet-4-6"


def throughput(n: int, rpm: float, latency: float, concurrency: int) -> dict[str, Any]:
    reqs = [
        ChatRequest(
            custom_id=f"b{i}",
            model=MODEL,
            max_tokens=64,
            messages=[Message(role="user", content=f"say hello number {i}")],
        )
        for i in range(n)
    ]
    with fake_anthropic_server(latency_s=latency, limits={"rpm": rpm}) as srv:
        backend = make_backend("anthropic", MODEL, base_url=srv.base_url)
        eng = Engine(backend, EngineConfig(concurrency=concurrency, rpm=rpm), progress=False)
        t0 = time.monotonic()
        out = eng.run_sync(reqs)
        wall = time.monotonic() - t0
        span = (srv.stats.last_call or 0) - (srv.stats.first_call or 0)
        calls = srv.stats.calls
    ok = sum(r.ok for r in out)
    return {
        "requests": n,
        "ok": ok,
        "server_calls": calls,
        "wall_s": round(wall, 2),
        "achieved_rpm": round((calls - 1) / span * 60, 1) if span else None,
        "wall_rpm": round(n / wall * 60, 1),
        "concurrency": concurrency,
    }


def output_tpm(
    n: int, limit: float, max_tokens: int, share: float, latency: float
) -> dict[str, Any]:
    reqs = [
        ChatRequest(
            custom_id=f"o{i}",
            model=MODEL,
            max_tokens=max_tokens,
            messages=[Message(role="user", content=f"write number {i}")],
        )
        for i in range(n)
    ]
    used = int(max_tokens * share)

    def fifth(body: dict[str, Any]) -> str:
        return "x" * (4 * used)  # the fake server counts 4 characters per token

    with fake_anthropic_server(latency_s=latency, responder=fifth) as srv:
        backend = make_backend("anthropic", MODEL, base_url=srv.base_url)
        eng = Engine(backend, EngineConfig(concurrency=32, output_tpm=limit), progress=False)
        out = eng.run_sync(reqs)
        span = (srv.stats.last_call or 0) - (srv.stats.first_call or 0)
        calls = srv.stats.calls
        tokens = srv.stats.output_tokens
    per_call = tokens / calls if calls else 0.0
    achieved = (tokens - per_call) / span * 60 if span else None
    return {
        "requests": n,
        "ok": sum(r.ok for r in out),
        "max_tokens": max_tokens,
        "output_tokens_per_answer": round(per_call, 1),
        "limit_output_tpm": limit,
        "achieved_output_tpm": round(achieved, 1) if achieved else None,
        "utilisation_of_output_tpm": round(achieved / limit, 3) if achieved else None,
        "target": "achieved output tokens/min >= 90% of --output-tpm at 20% of max_tokens",
    }


def story_responder(body: dict[str, Any]) -> Any:
    rng = random.Random(int(request_key(body)[:12], 16))
    schema = body["tools"][0]["input_schema"]
    n = schema["properties"]["items"]["maxItems"]
    return {
        "items": [
            {"pov": ("first", "third")[i % 2], "text": sample_text(rng, 180)} for i in range(n)
        ]
    }


def billed(per_request: int, prompt_cache: bool) -> dict[str, Any]:
    with (
        fake_anthropic_server(responder=story_responder) as srv,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cfg = GenerateConfig(
            kind="stories",
            backend="anthropic",
            model=MODEL,
            base_url=srv.base_url,
            emotions="happy,sad,afraid,calm",
            topics="3",
            per_topic=12,
            per_request=per_request,
            prompt_cache=prompt_cache,
            concurrency=8,
            progress=False,
        )
        m = run_generation(cfg, tmp)
    t = m.tokens
    stories = m.records
    weighted = t["input"] + t["output"] + 1.25 * t["cache_write"] + 0.1 * t["cache_read"]
    return {
        "per_request": per_request,
        "prompt_cache": prompt_cache,
        "requests": m.planned_requests,
        "stories": stories,
        "tokens": t,
        "billed_tokens_per_story": round(t["billed"] / stories, 1),
        "price_weighted_input_equiv_tokens_per_story": round(weighted / stories, 1),
        "usd_per_story": round(m.usd.spent_this_run / stories, 6),
    }


def _story_requests(n: int, max_tokens: int, model: str) -> list[ChatRequest]:
    """``n`` simple-style story requests (emotions x topics of the demo's plan, cycled)."""
    from emocurate.generators.common import BackendInfo
    from emocurate.generators.run import generator_class

    cfg = GenerateConfig(
        kind="stories",
        backend="transformers",
        model=model,
        emotions="ekman6",
        topics="5",
        per_topic=max(1, -(-n // 30)),
        max_tokens=max_tokens,
        prompt_style="simple",
    )
    info = BackendInfo(name="transformers", model=model, chat=True, supports_schema=False)
    plan = generator_class("stories")(cfg, info).plan()
    return plan[:n]


def _run_engine(backend: Any, reqs: list[ChatRequest], concurrency: int) -> dict[str, Any]:
    eng = Engine(
        backend, EngineConfig(concurrency=concurrency, max_retries=0, timeout_s=600), progress=False
    )
    t0 = time.perf_counter()
    out = eng.run_sync(reqs)
    wall = time.perf_counter() - t0
    ok = [r for r in out if r.ok and r.completion is not None]
    tokens = sum(r.completion.output_tokens for r in ok if r.completion is not None)
    return {
        "requests": len(reqs),
        "ok": len(ok),
        "errors": sorted({r.error or "" for r in out if not r.ok}),
        "output_tokens": tokens,
        "mean_output_tokens": round(tokens / max(1, len(ok)), 1),
        "wall_s": round(wall, 2),
        "tok_per_s": round(tokens / wall, 2),
    }


def local(args: Any) -> dict[str, Any]:
    import torch

    from emocurate.generators.backends.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    res: dict[str, Any] = {
        "benchmark": "generation_throughput_local",
        "model": args.model,
        "max_tokens": args.max_tokens,
        "torch_threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average_before": list(os.getloadavg()),
        "transformers": {},
    }
    if not args.skip_transformers:
        t0 = time.perf_counter()
        first = TransformersBackend(args.model, max_batch=1)
        res["load_s"] = round(time.perf_counter() - t0, 2)
        for b in [int(x) for x in args.batches.split(",")]:
            n = b if b > 1 else args.single_requests
            backend = TransformersBackend(args.model, max_batch=b, loaded=first.lm)
            res["transformers"][f"batch_{b}"] = _run_engine(
                backend, _story_requests(n, args.max_tokens, args.model), concurrency=b
            )
    if args.base_url:
        backend = make_backend("openai", args.server_model, base_url=args.base_url, timeout_s=600)
        n = args.server_requests
        res["server"] = {
            "base_url": args.base_url,
            "concurrency": args.server_concurrency,
            **_run_engine(
                backend,
                _story_requests(n, args.max_tokens, args.server_model),
                args.server_concurrency,
            ),
        }
    res["load_average_after"] = list(os.getloadavg())
    return res


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--local", action="store_true", help="local models (see the module doc)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8,24")
    ap.add_argument("--single-requests", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--server-model", default="smollm2-135m")
    ap.add_argument("--server-requests", type=int, default=8)
    ap.add_argument("--server-concurrency", type=int, default=4)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.local:
        os.environ.setdefault("OPENAI_API_KEY", "sk-local-server")
        result = local(args)
        text = json.dumps(result, indent=2)
        print(text)
        out = Path(args.out or ROOT / "bench" / "results" / "generation_throughput_local.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        return
    limit = 3000.0
    conc = throughput(1000, limit, 0.3, 32)
    tpm = output_tpm(60, 120_000.0, 4000, 0.2, 0.3)
    seq = throughput(40, limit, 0.3, 1)
    seq_rpm = seq["wall_rpm"]
    default = billed(12, True)
    baseline = billed(1, False)
    result = {
        "benchmark": "generation_throughput",
        "throughput": {
            "limit_rpm": limit,
            "latency_s": 0.3,
            "concurrent": conc,
            "utilisation_of_limit": round(conc["achieved_rpm"] / limit, 3),
            "sequential_measured": seq,
            "sequential_extrapolated_1000_s": round(1000 / seq_rpm * 60, 1),
            "speedup_vs_sequential": round(conc["wall_rpm"] / seq_rpm, 1),
            "target": "achieved rate >= 90% of the limit",
            "output_tpm": tpm,
        },
        "billed_tokens": {
            "defaults_12_per_request_with_prompt_cache": default,
            "one_per_request_no_cache": baseline,
            "ratio_billed_tokens": round(
                default["billed_tokens_per_story"] / baseline["billed_tokens_per_story"], 3
            ),
            "ratio_price_weighted_tokens": round(
                default["price_weighted_input_equiv_tokens_per_story"]
                / baseline["price_weighted_input_equiv_tokens_per_story"],
                3,
            ),
            "ratio_usd": round(default["usd_per_story"] / baseline["usd_per_story"], 3),
            "target": "billed tokens per story <= 40% of one-per-request without caching",
        },
        "notes": "fake server on 127.0.0.1 via the real anthropic SDK; sequential run is 40 requests "
        "extrapolated to 1,000; tokens = 4 characters each; stories ~180 words.",
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results" / "generation_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
