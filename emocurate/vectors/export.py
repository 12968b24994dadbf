"""Export a VectorSet direction as a llama.cpp control vector (GGUF).

llama.cpp reads tensors ``direction.N`` (float32, ``[hidden]``) and adds ``direction.N`` to the
output of its 0-based block ``N`` (``build_cvec(cur, il)`` at the end of layer ``il``; layer 0
is never steered). Our layer index is the 0-based block whose output we hook, so block ``L``
maps to ``direction.L``, and a layer-0 vector cannot be expressed (it is skipped). Metadata:
``general.architecture = controlvector``, ``controlvector.model_hint`` (the llama.cpp
architecture name) and ``controlvector.layer_count`` (the number of direction tensors, as
repeng writes it). By default each direction is the unit vector times the mean residual norm
at that layer, so ``--control-vector-scaled FILE:S`` matches ``emocurate steer --strength S``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from emocurate.errors import InputError
from emocurate.vectors.vectorset import VectorSet

# transformers model_type -> llama.cpp general.architecture
LLAMA_CPP_ARCH: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "phi3": "phi3",
    "gpt2": "gpt2",
    "gpt_neox": "gptneox",
}


UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def gguf_file_name(emotion: str) -> str:
    """A file name for one emotion's control vector that cannot leave its folder.

    Names come from ``vectorset.json``, which may have been crafted: anything but letters,
    digits, ``_``, ``-`` and inner dots becomes ``_`` (``../../x`` -> ``x``), so a name can
    neither climb out of the output folder nor be hidden.

    Raises:
        InputError: nothing usable is left of the name.
    """
    stem = UNSAFE.sub("_", emotion).strip("._-")
    if not stem:
        raise InputError(f"emotion name {emotion!r} in vectorset.json gives no usable file name")
    return f"{stem}.gguf"


def export_all(
    vs: VectorSet,
    folder: str | Path,
    *,
    scale: Literal["residual_norm", "unit", "raw"] = "residual_norm",
) -> list[Path]:
    """One ``<emotion>.gguf`` per emotion in ``folder`` (names sanitised, never outside it).

    Raises:
        InputError: two emotion names map to the same file name.
    """
    root = Path(folder)
    names: dict[str, str] = {}
    for emotion in vs.names:
        fname = gguf_file_name(emotion)
        if fname in names:
            raise InputError(
                f"emotion names {names[fname]!r} and {emotion!r} in vectorset.json map to the "
                f"same file {fname}; export them one at a time with --emotion and --out FILE"
            )
        names[fname] = emotion
    out = []
    for fname, emotion in names.items():
        path = root / fname
        if root.resolve() not in path.resolve().parents:  # belt and braces
            raise InputError(f"refusing to write {path}: outside {root}")
        out.append(export_gguf(vs, path, emotion, scale=scale))
    return out


def direction_name(layer: int) -> str:
    """llama.cpp tensor name for the output of 0-based block ``layer``."""
    return f"direction.{layer}"


def export_gguf(
    vs: VectorSet,
    path: str | Path,
    emotion: str,
    *,
    layers: list[int] | None = None,
    scale: Literal["residual_norm", "unit", "raw"] = "residual_norm",
    model_hint: str | None = None,
) -> Path:
    """Write one emotion's directions (one tensor per layer) as a control-vector GGUF."""
    import gguf

    row = vs.index(emotion)
    wanted = sorted(layers if layers is not None else vs.vectors)
    usable = [layer for layer in wanted if layer >= 1 and layer in vs.vectors]
    if not usable:
        raise InputError(
            f"no exportable layers in {wanted}: llama.cpp cannot steer block 0's output"
        )
    hint = model_hint or LLAMA_CPP_ARCH.get(vs.meta.model_type, vs.meta.model_type or "llama")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", len(usable))
    writer.add_string("emocurate.emotion", emotion)
    writer.add_string("emocurate.scale", scale)
    writer.add_string("emocurate.model_id", vs.meta.model_id)
    for layer in usable:
        if scale == "raw":
            vec = vs.vectors[layer][row].float()
        else:
            vec = vs.unit(layer)[row]
            if scale == "residual_norm":
                vec = vec * float(vs.meta.residual_norm.get(str(layer), 1.0))
        writer.add_tensor(direction_name(layer), vec.cpu().numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def read_gguf(path: str | Path) -> tuple[dict[str, str | int], dict[int, np.ndarray]]:
    """Metadata and ``{layer: direction}`` of a control-vector GGUF (for round-trip checks)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, str | int] = {}
    for name, fld in reader.fields.items():
        if name.startswith(("controlvector.", "emocurate.", "general.architecture")):
            val = fld.contents()
            meta[name] = val if isinstance(val, (str, int)) else str(val)
    dirs = {
        int(t.name.split(".", 1)[1]): np.array(t.data, dtype=np.float32).reshape(-1)
        for t in reader.tensors
        if t.name.startswith("direction.")
    }
    return meta, dirs
