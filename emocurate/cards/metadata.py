"""Offline checks of a card's YAML metadata, and merging generated Markdown into a user's card.

``RepoCard.validate()`` posts the card to the Hub's ``/api/validate-yaml`` endpoint, which
needs the network. Cards are written in pipelines and tests that must run offline, so this
module checks the same things locally: the YAML block parses to a mapping that survives a
``DatasetCardData``/``ModelCardData`` round-trip, and the fields the Hub constrains (license,
language codes, size and task categories, ``configs``) hold allowed values.

Generated card sections live between ``<!-- emocurate:begin NAME -->`` and
``<!-- emocurate:end NAME -->`` markers. Re-writing a card replaces only those blocks: text a
user wrote outside them (and metadata keys such as ``configs``) survives.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from huggingface_hub import DatasetCard, ModelCard, RepoCard

from emocurate import yamlio
from emocurate.errors import InputError, OutputError
from emocurate.io import atomic_write_bytes

SIZE_CATEGORIES = {
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
    "unknown",
    "other",
}
# The Hub's task categories that an emotion dataset can plausibly declare (subset of the Hub list).
TASK_CATEGORIES = {
    "text-generation",
    "text-classification",
    "token-classification",
    "question-answering",
    "summarization",
    "translation",
    "fill-mask",
    "sentence-similarity",
    "feature-extraction",
    "zero-shot-classification",
    "text2text-generation",
    "conversational",
    "table-question-answering",
    "text-retrieval",
    "other",
}
LICENSES = {
    "apache-2.0",
    "mit",
    "openrail",
    "bigscience-openrail-m",
    "creativeml-openrail-m",
    "bigcode-openrail-m",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "c-uda",
    "cc",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "eupl-1.1",
    "agpl-3.0",
    "gfdl",
    "gpl",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl",
    "lgpl-2.1",
    "lgpl-3.0",
    "isc",
    "lppl-1.3c",
    "ms-pl",
    "mpl-2.0",
    "odc-by",
    "odbl",
    "openrail++",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
    "pddl",
    "lgpl-lr",
    "deepfloyd-if-license",
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "gemma",
    "apple-ascl",
    "apple-amlr",
    "unknown",
    "other",
}
LANGUAGE_RE = re.compile(r"^([a-z]{2,3})([-_][A-Za-z0-9]{2,8})*$")
SPECIAL_LANGUAGES = {"code", "multilingual"}
YAML_BLOCK = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")

BEGIN = "<!-- emocurate:begin {name} -->"
END = "<!-- emocurate:end {name} -->"
BLOCK_RE = re.compile(
    r"<!-- emocurate:begin (?P<name>[\w.-]+) -->\n?(?P<body>.*?)\n?<!-- emocurate:end (?P=name) -->",
    re.S,
)


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def metadata_errors(meta: Any, repo_type: str = "dataset") -> list[str]:
    """Problems the Hub would reject in a card's metadata mapping (empty list when valid)."""
    if not isinstance(meta, dict):
        return ["metadata block must be a mapping"]
    errs: list[str] = []
    lic = meta.get("license")
    if lic is not None:
        for item in _as_list(lic):
            if not isinstance(item, str) or item not in LICENSES:
                errs.append(
                    f"license: '{item}' is not a Hub license id (use 'other' with license_name)"
                )
        if "other" in _as_list(lic) and not meta.get("license_name"):
            errs.append("license: 'other' needs license_name")
    for lang in _as_list(meta.get("language", [])):
        if not isinstance(lang, str) or not (LANGUAGE_RE.match(lang) or lang in SPECIAL_LANGUAGES):
            errs.append(f"language: '{lang}' is not an ISO 639 code")
    for key, allowed in (
        ("size_categories", SIZE_CATEGORIES),
        ("task_categories", TASK_CATEGORIES),
    ):
        for item in _as_list(meta.get(key, [])):
            if item not in allowed:
                errs.append(f"{key}: '{item}' is not allowed")
    tags = meta.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        errs.append("tags: must be a list of non-empty strings")
    if "pretty_name" in meta and not isinstance(meta["pretty_name"], str):
        errs.append("pretty_name: must be a string")
    if "configs" in meta:
        errs.extend(_config_errors(meta["configs"]))
    if repo_type == "model" and "base_model" in meta:
        for bm in _as_list(meta["base_model"]):
            if not isinstance(bm, str) or bm.count("/") > 1 or not bm:
                errs.append(f"base_model: '{bm}' is not a Hub model id")
    return errs


def _config_errors(configs: Any) -> list[str]:
    if not isinstance(configs, list) or not configs:
        return ["configs: must be a non-empty list"]
    errs, names, defaults = [], set(), 0
    for i, cfg in enumerate(configs):
        if not isinstance(cfg, dict) or not isinstance(cfg.get("config_name"), str):
            errs.append(f"configs[{i}]: needs a config_name string")
            continue
        if cfg["config_name"] in names:
            errs.append(f"configs[{i}]: duplicate config_name '{cfg['config_name']}'")
        names.add(cfg["config_name"])
        defaults += bool(cfg.get("default"))
        files = cfg.get("data_files")
        if files is None:
            continue
        ok = isinstance(files, str) or (
            isinstance(files, list)
            and all(
                isinstance(f, str)
                or (
                    isinstance(f, dict)
                    and isinstance(f.get("split"), str)
                    and isinstance(f.get("path"), str | list)
                )
                for f in files
            )
        )
        if not ok:
            errs.append(f"configs[{i}].data_files: must be a path, or a list of {{split, path}}")
    if defaults > 1:
        errs.append("configs: more than one config is marked default")
    return errs


def check_card(text: str, repo_type: str = "dataset") -> list[str]:
    """Offline equivalent of ``RepoCard.validate()``: YAML parses, round-trips, fields allowed."""
    m = YAML_BLOCK.search(text)
    if not m:
        return ["card has no YAML metadata block"]
    try:
        raw = yamlio.safe_load(m.group(2))
    except yaml.YAMLError as exc:
        return [f"YAML does not parse: {str(exc).splitlines()[0]}"]
    errs = metadata_errors(raw, repo_type)
    cls: type[RepoCard] = DatasetCard if repo_type == "dataset" else ModelCard
    try:
        card = cls(text)
    except Exception as exc:  # the card class rejects the mapping
        return [*errs, f"card data does not load: {exc}"]
    round_trip = yamlio.safe_load(card.data.to_yaml())
    if round_trip != raw:
        errs.append("metadata does not survive a CardData round-trip")
    return errs


def block(name: str, body: str) -> str:
    """A generated section wrapped in its markers."""
    return f"{BEGIN.format(name=name)}\n{body.strip()}\n{END.format(name=name)}"


def merge_body(existing: str | None, fresh: str) -> str:
    """Refresh the generated blocks of ``existing`` with those of ``fresh``; keep everything else.

    Blocks present in ``fresh`` but missing from ``existing`` (a newer emocurate adds a section)
    are appended; a user's own sections and edits outside the markers are never touched.
    """
    if not existing or not existing.strip():
        return fresh
    new_blocks = {m.group("name"): m.group(0) for m in BLOCK_RE.finditer(fresh)}
    seen: set[str] = set()

    def _swap(m: re.Match[str]) -> str:
        seen.add(m.group("name"))
        return new_blocks.get(m.group("name"), m.group(0))

    merged = BLOCK_RE.sub(lambda m: _swap(m), existing)
    missing = [b for name, b in new_blocks.items() if name not in seen]
    if missing:
        merged = merged.rstrip("\n") + "\n\n" + "\n\n".join(missing) + "\n"
    return merged


def merge_metadata(
    existing: dict[str, Any], fresh: dict[str, Any], *, owned: set[str]
) -> dict[str, Any]:
    """Merge card metadata: ``owned`` keys (facts about the data) are refreshed, tags united,
    and every other key a user set (``configs``, ``license``, ``language``...) wins."""
    out = dict(existing)
    for key, value in fresh.items():
        if key in owned or key not in out:
            out[key] = value
        elif key == "tags":
            out[key] = list(dict.fromkeys([*_as_list(out[key]), *_as_list(value)]))
    return out


CardT = TypeVar("CardT", bound=RepoCard)


def load_existing(card_cls: type[CardT], card_path: Path) -> CardT | None:
    """The card already at ``card_path`` (None when there is none), to merge a new one into.

    Raises:
        InputError: the file exists but does not parse as a card.
    """
    if not card_path.exists():
        return None
    try:
        return card_cls.load(card_path)
    except Exception as exc:
        raise InputError(
            f"{card_path}: existing card does not parse ({str(exc).splitlines()[0]})"
        ) from None


def write_card(card_path: Path, content: str, repo_type: str) -> Path:
    """Check ``content``'s metadata offline (see :func:`check_card`), then write it atomically.

    Raises:
        OutputError: the generated metadata would not pass the Hub's checks.
    """
    errors = check_card(content, repo_type)
    if errors:
        raise OutputError(f"{card_path}: generated card metadata is invalid: {errors[0]}")
    atomic_write_bytes(card_path, content.encode("utf-8"))
    return card_path
