"""Publish a dataset folder or a vector set folder to the Hugging Face Hub.

``push`` first assembles the exact repository tree in a staging folder (card refreshed with the
repo id, data files, manifests; or safetensors, JSON metadata, evaluation, figures and card;
a missing card is written into the tree, never into the source folder, which is only read),
then uploads that tree with ``HfApi.create_repo`` + ``upload_folder`` in one commit. A dry run
writes the same tree to a local folder (an empty one, or one an earlier dry run made, known by
its marker file; never the source or a folder overlapping it) and proves it loads: ``datasets.load_dataset`` must read
back exactly the rows of the source folder (per config), and a vector set must load with
``VectorSet.load``. The token is passed to ``huggingface_hub`` only; it is never written to a
file, a manifest or a log line, and it is scrubbed from any error message.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from emocurate.artifacts import VECTORSET_META, VECTORSET_TENSORS
from emocurate.cards.dataset_card import (
    _guess_validation_dir,
    dataset_configs,
    write_dataset_card,
)
from emocurate.cards.vector_card import write_vector_card
from emocurate.errors import BackendError, ConfigError, InputError, OutputError
from emocurate.io import ensure_dir
from emocurate.records import canonical_json

Kind = Literal["dataset", "vectors"]
DATASET_PATTERNS = (
    "README.md",
    "manifest.json",
    "data/*.parquet",
    "kept/data/*.parquet",
    "rejected/data/*.parquet",
    "kept/manifest.json",
    "rejected/manifest.json",
    "*.parquet",
)
VECTOR_PATTERNS = (
    "README.md",
    VECTORSET_TENSORS,
    VECTORSET_META,
    "evaluation.json",
    "figures/*.svg",
    "*.gguf",
    f"*/{VECTORSET_TENSORS}",
    f"*/{VECTORSET_META}",
    "*/evaluation.json",
)
LOAD_SNIPPET = re.compile(r'load_dataset\("[\w.-]+/[\w.-]+"')
REPO_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def detect_kind(folder: str | Path) -> Kind:
    """``vectors`` for a VectorSet folder, ``dataset`` for a folder with Parquet rows."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"folder not found: {p}")
    if (p / VECTORSET_TENSORS).exists() and (p / VECTORSET_META).exists():
        return "vectors"
    if dataset_configs(p):
        return "dataset"
    raise InputError(
        f"{p}: neither a dataset folder (data/*.parquet) nor a vector set ({VECTORSET_TENSORS} + {VECTORSET_META})"
    )


def check_repo_id(repo_id: str) -> None:
    """Reject ids the Hub would refuse, before any network call."""
    parts = repo_id.split("/")
    if (
        len(parts) != 2
        or not all(parts)
        or not all(set(x) <= REPO_ID_CHARS for x in parts)
        or any(x.startswith((".", "-")) or x.endswith((".", "-")) for x in parts)
        or len(parts[1]) > 96
    ):
        raise ConfigError(
            f"invalid repo id '{repo_id}' (expected ORG/NAME with letters, digits, '-', '_', '.')"
        )


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(
        fnmatch.fnmatchcase(rel, pat) and rel.count("/") == pat.count("/") for pat in patterns
    )


def repo_files(folder: Path, kind: Kind) -> list[str]:
    """Relative paths (POSIX) of the files that make up the repository, sorted.

    Raises:
        InputError: a publishable name is a link to a file outside ``folder`` (publishing it
            would upload a file the user did not put in the folder).
    """
    patterns = VECTOR_PATTERNS if kind == "vectors" else DATASET_PATTERNS
    root = folder.resolve()
    out = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).as_posix()
        if (
            f.is_file()
            and not any(part.startswith(".") for part in rel.split("/"))
            and _matches(rel, patterns)
        ):
            if root not in f.resolve().parents:
                raise InputError(f"{folder}/{rel} links outside the folder; refusing to publish it")
            out.append(rel)
    return out


def build_tree(
    folder: str | Path, out: str | Path, *, repo_id: str | None = None
) -> tuple[Kind, list[str]]:
    """Copy the publishable files of ``folder`` into ``out`` and write the card there.

    The source folder is only read: a missing card is written into the tree, never into
    ``folder`` (an existing card, and its inputs, are kept as written).
    """
    src = Path(folder)
    kind = detect_kind(src)
    files = repo_files(src, kind)
    dst = Path(out)
    for rel in files:
        target = safe_join(dst, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    if "README.md" not in files:
        if kind == "dataset":
            write_dataset_card(dst, repo_id=repo_id, validation_dir=_guess_validation_dir(src))
        else:
            write_vector_card(dst)
        files = repo_files(dst, kind)
    if repo_id and kind == "dataset":
        card = dst / "README.md"
        card.write_text(
            LOAD_SNIPPET.sub(f'load_dataset("{repo_id}"', card.read_text("utf-8")), "utf-8"
        )
    return kind, files


def _rows(files: list[Path]) -> list[str]:
    rows: list[str] = []
    for f in files:
        rows.extend(canonical_json(r) for r in pq.read_table(f).to_pylist())
    return sorted(rows)


def verify_dataset_tree(tree: Path, source: Path) -> dict[str, int]:
    """Load every config of ``tree`` with ``datasets.load_dataset``; rows must equal the source's."""
    import datasets

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="emocurate-dryrun-cache-") as cache:
        for cfg in dataset_configs(tree):
            name = cfg["config_name"]
            pattern = cfg["data_files"][0]["path"]
            ds = datasets.load_dataset(str(tree), name=name, split="train", cache_dir=cache)
            got = sorted(canonical_json(r) for r in ds.to_list())
            want = _rows(sorted(source.glob(pattern)))
            if got != want:
                raise OutputError(
                    f"dry run: config '{name}' read back {len(got)} rows that differ from the "
                    f"{len(want)} rows of {source}/{pattern}"
                )
            counts[name] = len(got)
    return counts


def verify_vector_tree(tree: Path, source: Path) -> dict[str, int]:
    """The published vector set loads and holds the same names and tensors as the source."""
    from emocurate.vectors.vectorset import VectorSet  # the tensors themselves are compared

    a, b = VectorSet.load(tree), VectorSet.load(source)
    if a.names != b.names or any(not a.vectors[k].equal(b.vectors[k]) for k in b.vectors):
        raise OutputError("dry run: the published vector set differs from the source folder")
    return {"vectors": len(a.names), "layers": len(a.vectors)}


DRY_RUN_MARKER = ".emocurate-dry-run"
"""Marks a folder ``push --dry-run`` made, so a later dry run may replace its contents."""


def _overlaps(a: Path, b: Path) -> bool:
    ra, rb = a.resolve(), b.resolve()
    return ra == rb or ra in rb.parents or rb in ra.parents


def _prepare_dry_run_dir(path: Path, source: Path) -> Path:
    """An empty folder, or one an earlier dry run made (its marker), emptied; never the source.

    Raises:
        OutputError: ``path`` is, contains or lies inside the source folder, or is a non-empty
            folder without the marker (it is left untouched).
    """
    if _overlaps(path, source):
        raise OutputError(
            f"dry-run folder {path} overlaps the source folder {source}; choose a folder outside it"
        )
    if path.exists() and not path.is_dir():
        raise OutputError(f"dry-run folder {path} is a file; choose a new folder")
    if path.exists() and any(path.iterdir()):
        if not (path / DRY_RUN_MARKER).is_file():
            raise OutputError(
                f"dry-run folder {path} is not empty and was not made by an earlier dry run "
                "(choose a new or empty folder)"
            )
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out = ensure_dir(path)
    (out / DRY_RUN_MARKER).write_text(
        "made by `emocurate push --dry-run`; a later dry run may replace this folder\n", "utf-8"
    )
    return out


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` for a relative POSIX path that stays inside ``root``.

    Raises:
        OutputError: ``rel`` is absolute, has ``..`` or empty parts, or resolves outside
            ``root`` (through a symbolic link).
    """
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise OutputError(f"refusing file name '{rel}': it would leave the repository folder")
    target = root.joinpath(*parts)
    if root.resolve() not in target.resolve().parents:
        raise OutputError(f"refusing file name '{rel}': it resolves outside {root}")
    return target


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _network_error(exc: BaseException) -> bool:
    """An HTTP client's transport error (httpx's family, matched by name: the Hub client's
    HTTP library is not ours to import; ``requests``' errors are OSErrors)."""
    return any(
        c.__name__ in ("TransportError", "RequestError", "TimeoutException")
        and c.__module__.startswith("httpx")
        for c in type(exc).__mro__
    )


def _push_error(
    exc: Exception, repo_id: str, endpoint: str | None, token: str | None
) -> BackendError | None:
    """A failed push as one line (token scrubbed): the Hub's HTTP status, an I/O error, an
    unreachable endpoint or one that does not answer like a Hub; None for anything else (a bug,
    re-raised as it is)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    from emocurate.redact import redact_text

    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        first = _scrub(str(exc), token).splitlines()[0] if str(exc) else type(exc).__name__
        return BackendError(f"Hub push to {repo_id} failed (HTTP {status}): {first}")
    if isinstance(exc, OSError | ValueError):
        return BackendError(
            f"Hub push to {repo_id} failed: {_scrub(str(exc), token).splitlines()[0]}"
        )
    where = redact_text(endpoint or constants.ENDPOINT)
    detail = _scrub(str(exc), token).splitlines()[0] if str(exc) else "no detail"
    if _network_error(exc):  # refused, unknown host, timeout, dropped connection
        return BackendError(
            f"Hub push to {repo_id} failed: cannot reach {where} "
            f"({type(exc).__name__}: {detail}); check the network and HF_ENDPOINT"
        )
    if isinstance(exc, KeyError | TypeError | AttributeError):  # not the Hub's reply
        return BackendError(
            f"Hub push to {repo_id} failed: {where} did not answer like a Hugging Face "
            f"Hub ({type(exc).__name__}: {detail}); check HF_ENDPOINT"
        )
    return None


def push(
    dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: str | Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Publish a dataset folder (data + card) or a vector set folder (safetensors + JSON + card).

    Args:
        dir: the folder to publish (kind detected from its contents).
        repo_id: ``ORG/NAME`` on the Hub.
        private: create the repository as private.
        revision: branch to commit to (created when missing); default ``main``.
        dry_run: write the exact repository tree here instead of uploading, and check it loads.
        token: Hub token; default: ``HF_TOKEN`` or the stored login. Never written or logged.
        endpoint: Hub URL; default: ``HF_ENDPOINT`` or huggingface.co.

    Returns:
        ``{"kind", "repo_type", "repo_id", "files", "rows"|"vectors", "dry_run"|"commit", "url"}``.
    """
    check_repo_id(repo_id)
    src = Path(dir)
    kind = detect_kind(src)
    repo_type = "dataset" if kind == "dataset" else "model"
    if dry_run is not None:
        out = _prepare_dry_run_dir(Path(dry_run), src)
        kind, files = build_tree(src, out, repo_id=repo_id)
        checked = (
            verify_dataset_tree(out, src) if kind == "dataset" else verify_vector_tree(out, src)
        )
        return {
            "kind": kind,
            "repo_type": repo_type,
            "repo_id": repo_id,
            "files": files,
            "checked": checked,
            "dry_run": str(out),
            "private": private,
            "revision": revision or "main",
        }

    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="emocurate-push-") as tmp:
        kind, files = build_tree(src, tmp, repo_id=repo_id)
        api = HfApi(endpoint=endpoint, token=token)
        try:
            url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
            info = api.upload_folder(
                folder_path=tmp,
                repo_id=repo_id,
                repo_type=repo_type,
                revision=revision,
                commit_message=f"emocurate push: {kind} ({len(files)} files)",
            )
        except Exception as exc:
            error = _push_error(exc, repo_id, endpoint, token)
            if error is None:
                raise
            raise error from None
    return {
        "kind": kind,
        "repo_type": repo_type,
        "repo_id": repo_id,
        "files": files,
        "url": str(url),
        "commit": getattr(info, "oid", None),
        "private": private,
        "revision": revision or "main",
    }
