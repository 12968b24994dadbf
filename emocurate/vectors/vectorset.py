"""VectorSet: emotion directions for one or more layers plus everything needed to trust them.

Stored as ``vectors.safetensors`` (tensors only: never pickle) and ``vectorset.json``
(metadata: model and revision, layer, hook site, pooling, skip, method, training-data hash,
neutral-PC count, library versions). Each layer also keeps the mean and standard deviation of
each vector's projection on neutral text, so scores are z-scored against a fixed reference and
compare across documents and corpora.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from emocurate.artifacts import (  # noqa: F401 - re-exported
    SPEAKER_SUBDIRS,
    VECTORSET_META,
    VECTORSET_TENSORS,
    VectorSetMeta,
    library_versions,
    read_vectorset_meta,
    vectorset_folder,
)
from emocurate.errors import InputError
from emocurate.io import atomic_write_bytes, ensure_dir

# The folder layout and the metadata reader are torch-free (emocurate.artifacts), so the cards
# read a set's metadata without loading torch; these names stay for the torch-side callers.
TENSORS = VECTORSET_TENSORS
META = VECTORSET_META


@dataclass
class VectorSet:
    """Directions ``vectors[layer]`` of shape ``[n_emotions, hidden]`` in ``meta.names`` order."""

    vectors: dict[int, torch.Tensor]
    meta: VectorSetMeta
    ref_mean: dict[int, torch.Tensor] = field(default_factory=dict)
    ref_std: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Emotion (or direction) names, one per row."""
        return self.meta.names

    def index(self, name: str) -> int:
        """Row of one named direction."""
        try:
            return self.meta.names.index(name)
        except ValueError:
            raise InputError(
                f"vector set has no direction '{name}' (has: {', '.join(self.meta.names[:12])}...)"
            ) from None

    def layer_or_default(self, layer: int | None) -> int:
        """``layer`` if given and present, else the chosen default layer."""
        chosen = self.meta.default_layer if layer is None else layer
        if chosen not in self.vectors:
            raise InputError(f"vector set has no layer {chosen} (has {sorted(self.vectors)})")
        return chosen

    def unit(self, layer: int | None = None) -> torch.Tensor:
        """Unit-norm directions at a layer, ``[n_emotions, hidden]``."""
        v = self.vectors[self.layer_or_default(layer)].float()
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def project(
        self, acts: torch.Tensor, layer: int | None = None, *, zscore: bool = True
    ) -> torch.Tensor:
        """Projections ``h·v/‖v‖`` of ``[..., hidden]`` activations, z-scored when a reference exists."""
        layer = self.layer_or_default(layer)
        proj = acts.float() @ self.unit(layer).T.to(acts.device)
        if zscore and layer in self.ref_mean:
            proj = (proj - self.ref_mean[layer].to(acts.device)) / self.ref_std[layer].to(
                acts.device
            ).clamp_min(1e-6)
        return proj

    def set_reference(self, layer: int, neutral_acts: torch.Tensor) -> None:
        """Record mean/std of projections of neutral token activations ``[n, hidden]``."""
        proj = neutral_acts.float() @ self.unit(layer).T
        self.ref_mean[layer] = proj.mean(0)
        self.ref_std[layer] = proj.std(0).clamp_min(1e-6)
        self.meta.has_reference = True

    def save(self, out_dir: str | Path) -> Path:
        """Write safetensors + JSON into ``out_dir`` (created if needed)."""
        out = ensure_dir(out_dir)
        tensors: dict[str, torch.Tensor] = {}
        for layer, v in self.vectors.items():
            tensors[f"vectors.L{layer}"] = v.float().contiguous().cpu()
        for layer, m in self.ref_mean.items():
            tensors[f"ref_mean.L{layer}"] = m.float().contiguous().cpu()
            tensors[f"ref_std.L{layer}"] = self.ref_std[layer].float().contiguous().cpu()
        tmp = out / f".{TENSORS}.tmp"
        save_file(
            tensors,
            str(tmp),
            metadata={"format": "emocurate-vectorset", "names": json.dumps(self.names)},
        )
        tmp.replace(out / TENSORS)
        atomic_write_bytes(out / META, (self.meta.model_dump_json(indent=2) + "\n").encode())
        return out

    @classmethod
    def load(cls, in_dir: str | Path, kind: str | None = None) -> VectorSet:
        """Load a VectorSet folder (safetensors only; nothing is unpickled).

        Args:
            in_dir: a vector set folder, or a speaker-aware fit folder (with ``human/`` and
                ``assistant/`` subfolders) together with ``kind``.
            kind: ``speaker_human``/``human`` or ``speaker_assistant``/``assistant`` to pick a
                subfolder of a speaker-aware fit.
        """
        d = vectorset_folder(in_dir, kind)
        meta = read_vectorset_meta(d)
        vs = cls(vectors={}, meta=meta)
        try:  # a truncated or foreign file: one line naming it, not an internal error
            for key, t in load_file(str(d / TENSORS)).items():
                kind, layer = key.rsplit(".L", 1)
                target = {"vectors": vs.vectors, "ref_mean": vs.ref_mean, "ref_std": vs.ref_std}
                target[kind][int(layer)] = t
        except Exception as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{d / TENSORS}: cannot read the vector set tensors ({why})") from None
        return vs
