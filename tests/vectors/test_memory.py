"""Peak memory of ``fit`` does not grow with the number of records (10x records).

Measured exactly with the torch profiler's allocator trace (every CPU tensor allocation and
free), so Python-object noise does not blur it. Texts have identical token counts so every
batch has the same shape at both sizes. As a positive control, the ``pca`` method, which must
keep one pooled row per record and layer, shows the growth the measurement can detect.
"""

from __future__ import annotations

import json
import random

import pytest
from tiny import tiny_lm
from torch.profiler import ProfilerActivity, profile

from emocurate.configs import FitConfig
from emocurate.io import write_records
from emocurate.records import Story
from emocurate.vectors.fit import fit_vectors

WORDS = [
    "the",
    "and",
    "was",
    "day",
    "with",
    "said",
    "play",
    "mom",
    "big",
    "time",
    "had",
    "saw",
    "very",
]
EMOTIONS = {"happy": "happy", "sad": "friend", "scared": "little", "angry": "named"}


def fixed_length_records(n_per: int) -> list[Story]:
    rng = random.Random(0)
    out = []
    for emotion, marker in EMOTIONS.items():
        for i in range(n_per):
            words = [rng.choice(WORDS) for _ in range(30)]
            for pos in rng.sample(range(30), 5):
                words[pos] = marker
            out.append(Story(id=f"{emotion}{i}", text=" ".join(words), emotion=emotion, topic="x"))
    return out


def peak_bytes(lm, records_dir, out_dir, tmp_path, method: str) -> int:
    cfg = FitConfig(layers="all", method=method, skip=0, batch_tokens=1024, holdout=0.2)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fit_vectors(records_dir, cfg, out_dir, lm=lm)
    trace = tmp_path / f"trace-{method}-{out_dir.name}.json"
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    totals = [
        e["args"]["Total Allocated"]
        for e in events
        if e.get("name") == "[memory]" and e["args"].get("Device Type", 0) == 0
    ]
    return max(totals) - totals[0]


@pytest.mark.slow
def test_fit_peak_memory_flat_in_record_count(tmp_path, tokenizer260k):
    lm = tiny_lm(
        "llama", tokenizer260k, hidden_size=256, intermediate_size=256, num_hidden_layers=4
    )
    for n in (25, 250):
        write_records(tmp_path / f"rec{n}", fixed_length_records(n))
    small = peak_bytes(lm, tmp_path / "rec25", tmp_path / "o25", tmp_path, "mean_diff")
    large = peak_bytes(lm, tmp_path / "rec250", tmp_path / "o250", tmp_path, "mean_diff")
    per_row_storage = (
        int(0.8 * 900) * 4 * 256 * 4
    )  # what keeping pooled rows for 9x more training records costs
    assert large - small < 0.1 * per_row_storage, (small, large, per_row_storage)
    control = peak_bytes(lm, tmp_path / "rec250", tmp_path / "p250", tmp_path, "pca")
    assert control - large > 0.5 * per_row_storage, (large, control)
