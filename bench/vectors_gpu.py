"""GPU checks of the vectors stage: bf16 capture parity, fit throughput and peak GPU memory vs records.

Runs on a CUDA machine (skips with a JSON note otherwise). A random-init Llama of realistic
width (hidden 2048, 8 layers, vocab 512 with the embedded tokenizer) in bfloat16:
- hook capture vs ``output_hidden_states`` for llama, qwen2 and gpt2 random configs in bf16;
- ``fit_vectors`` (mean_diff, all layers swept) on N and 10N templated stories: wall time,
  forward tokens/s and ``torch.cuda.max_memory_allocated`` (exact allocator peak). (What
  per-record storage would cost: 4 bytes x hidden x layers x 0.8 N, about 210 MB at 4000 records.)

Prints JSON and writes ``bench/results/vectors_gpu.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "vectors"))
RESULTS = ROOT / "bench" / "results" / "vectors_gpu.json"


def main() -> None:
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    from synth import make_stories
    from transformers import AutoConfig, AutoModelForCausalLM

    from emocurate.configs import FitConfig
    from emocurate.io import write_records
    from emocurate.vectors.capture import capture
    from emocurate.vectors.fit import fit_vectors
    from emocurate.vectors.models import LoadedModel, find_layers, load_model

    tok = load_model("stories260K").tokenizer
    report: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}

    parity = {}
    for mtype, extra in (
        ("llama", {}),
        ("qwen2", {}),
        ("gpt2", {"n_embd": 256, "n_layer": 4, "n_head": 4}),
    ):
        base = (
            {
                "vocab_size": 512,
                "hidden_size": 256,
                "intermediate_size": 512,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
            }
            if mtype != "gpt2"
            else {"vocab_size": 512}
        )
        cfg = AutoConfig.for_model(mtype, **base, **extra)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda().eval()
        ids = torch.randint(3, 512, (4, 64), device="cuda")
        with torch.inference_mode():
            ref = model(input_ids=ids, output_hidden_states=True).hidden_states
        with capture(model, [0, 1, 2]) as cap:
            got = cap.run(input_ids=ids)
        parity[mtype] = max(
            float((got[i].float() - ref[i + 1].float()).abs().max()) for i in range(3)
        )
    report["capture_max_abs_diff_bf16"] = parity

    cfg = AutoConfig.for_model(
        "llama",
        vocab_size=512,
        hidden_size=2048,
        intermediate_size=5504,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=8,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda().eval()
    path, layers = find_layers(model)
    lm = LoadedModel(
        model=model,
        tokenizer=tok,
        model_id="random-llama-h2048",
        revision="random",
        layers=layers,
        layer_path=path,
    )
    work = Path(tempfile.mkdtemp())
    runs = {}
    for i, (method, n_per) in enumerate((("mean_diff", 100), ("mean_diff", 1000))):
        recs = make_stories(n_per, sentences=8)
        write_records(work / f"r{n_per}", recs)
        n_tokens = sum(len(x) for x in tok([r.text for r in recs])["input_ids"])
        if i == 0:  # warm-up (kernels, allocator) before anything is timed
            fit_vectors(
                work / f"r{n_per}",
                FitConfig(layers="all", batch_tokens=16384),
                work / "warm",
                lm=lm,
            )
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        vs = fit_vectors(
            work / f"r{n_per}",
            FitConfig(layers="all", method=method, batch_tokens=16384, holdout=0.2),
            work / f"o{method}{n_per}",
            lm=lm,
        )
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        runs[f"{method}_{4 * n_per}"] = {
            "records": 4 * n_per,
            "seconds": dt,
            "forward_tokens_per_s": n_tokens / dt,
            "peak_gpu_mb_above_model": (torch.cuda.max_memory_allocated() - base) / 2**20,
            "heldout_accuracy": vs.meta.evaluation.accuracy,
            "chosen_layer": vs.meta.default_layer,
        }
    report["fit"] = runs
    small, large = runs["mean_diff_400"], runs["mean_diff_4000"]
    report["mean_diff_peak_growth_10x_mb"] = (
        large["peak_gpu_mb_above_model"] - small["peak_gpu_mb_above_model"]
    )
    text = json.dumps(report, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
