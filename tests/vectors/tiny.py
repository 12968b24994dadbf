"""Tiny random-init causal LMs of several families (no download, no pretrained weights)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from emocurate.vectors.models import LoadedModel, find_layers

COMMON = {
    "vocab_size": 512,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}

CONFIGS: dict[str, dict[str, Any]] = {
    "llama": dict(COMMON),
    "mistral": dict(COMMON, sliding_window=None),
    "qwen2": dict(COMMON),
    "qwen3": dict(COMMON, head_dim=8),
    "gemma2": dict(COMMON, head_dim=8),
    "gemma3_text": dict(COMMON, head_dim=8),
    "phi3": dict(COMMON, pad_token_id=0),
    "gpt2": {"vocab_size": 512, "n_embd": 32, "n_layer": 4, "n_head": 4, "n_positions": 128},
    "gpt_neox": {
        "vocab_size": 512,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "max_position_embeddings": 128,
    },
}


def tiny_model(model_type: str, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A random-init model of ``model_type`` in eval mode."""
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(model_type, **{**CONFIGS[model_type], **overrides})
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg)
    return model.eval()


def tiny_lm(model_type: str, tokenizer: Any, seed: int = 0, **overrides: Any) -> LoadedModel:
    """A LoadedModel around a tiny random model and a real tokenizer."""
    model = tiny_model(model_type, seed, **overrides)
    path, layers = find_layers(model)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=f"tiny-{model_type}",
        revision="random",
        layers=layers,
        layer_path=path,
    )
