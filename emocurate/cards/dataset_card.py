"""Dataset card: a Hub ``README.md`` that says how every record was made and filtered.

The card is built with ``huggingface_hub.DatasetCard``/``DatasetCardData`` so its YAML header is
what the Hub expects (license, language, task and size categories, ``configs`` with data files,
tags). The body is summed from the data itself (provenance of every row) plus the stage
manifests (validation funnel). Re-writing a card merges: generated blocks are refreshed, user
text and user metadata (``configs`` included) are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from emocurate import __version__
from emocurate.cards.inputs import (
    GenerationSummary,
    ValidationSummary,
    data_files,
    summarize_records,
    summarize_validation,
)
from emocurate.cards.inputs import (
    size_category as _size_category,
)
from emocurate.cards.metadata import load_existing, merge_body, merge_metadata, write_card
from emocurate.cards.render import render
from emocurate.errors import InputError

CARD = "README.md"
# Metadata that states facts about the current data: refreshed on every write.
OWNED_KEYS = {"size_categories"}
DEFAULT_TAGS = ["emotion", "synthetic", "emocurate"]


def dataset_configs(dataset_dir: Path) -> list[dict[str, Any]]:
    """``configs`` for the folder's layout: ``data/`` or a validation folder's ``kept``/``rejected``."""
    if data_files(dataset_dir) and (dataset_dir / "data").is_dir():
        return [
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}
        ]
    configs = []
    for sub in ("kept", "rejected"):
        if (dataset_dir / sub / "data").is_dir() and data_files(dataset_dir / sub):
            configs.append(
                {
                    "config_name": "default" if sub == "kept" else sub,
                    "data_files": [{"split": "train", "path": f"{sub}/data/*.parquet"}],
                }
            )
    if not configs and data_files(dataset_dir):
        configs = [
            {"config_name": "default", "data_files": [{"split": "train", "path": "*.parquet"}]}
        ]
    return configs


def _guess_validation_dir(dataset_dir: Path) -> Path | None:
    """A dataset written to ``VALIDATION/kept`` has its funnel one folder up."""
    for cand in (dataset_dir, dataset_dir.parent):
        if (cand / "kept").is_dir() and (cand / "manifest.json").exists():
            return cand
    return None


def _scalar_facts(manifest: dict[str, Any], limit: int = 16) -> list[tuple[str, Any]]:
    """Top-level scalar fields of a manifest (and one level into small dicts), for a facts table."""
    out: list[tuple[str, Any]] = []
    skip = {"stage", "created", "emocurate_version", "cache_file", "config", "fingerprint"}
    for key, val in manifest.items():
        if key in skip:
            continue
        if isinstance(val, str | int | float | bool):
            out.append((key, val))
        elif (
            isinstance(val, dict)
            and len(val) <= 8
            and all(isinstance(v, str | int | float | bool) for v in val.values())
        ):
            out.extend((f"{key}.{k}", v) for k, v in val.items())
        elif (
            isinstance(val, list)
            and len(val) <= 12
            and all(isinstance(v, str | int | float) for v in val)
        ):
            out.append((key, ", ".join(str(v) for v in val)))
    return out[:limit]


def _table_columns(rows: list[dict[str, Any]], first: str) -> list[str]:
    cols: dict[str, None] = {first: None}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, str | int | float | bool) or v is None:
                cols.setdefault(k, None)
    return list(cols)


def _label_table(summary: GenerationSummary) -> tuple[list[str], list[tuple[str, list[int]]]]:
    cols = [c for c in ("emotion", "human_emotion", "assistant_emotion") if summary.labels.get(c)]
    names = sorted(summary.emotions, key=lambda e: (-sum(summary.labels[c][e] for c in cols), e))
    return cols, [(e, [summary.labels[c][e] for c in cols]) for e in names]


def _generation(
    dataset_dir: Path, data: GenerationSummary, generation_dir: Path | None, missing: list[str]
) -> tuple[GenerationSummary | None, str]:
    """The generation summary the card reports (the generation folder's, else the published
    records') and its folder name; what is missing is noted."""
    gen: GenerationSummary | None = data
    gen_label = dataset_dir.name
    if generation_dir is not None:
        if Path(generation_dir).is_dir():
            gen = summarize_records(generation_dir)
            gen_label = Path(generation_dir).name
        else:
            missing.append(f"generation folder {generation_dir} (not found)")
    if gen is None or gen.with_provenance == 0:
        missing.append("record provenance (no `provenance` column)")
    return gen, gen_label


def _backend_models(gen: GenerationSummary | None) -> dict[tuple[str, str], int]:
    """Records per (backend, model) pair."""
    backend_models: dict[tuple[str, str], int] = {}
    if gen is not None and gen.with_provenance:
        # Backends and models are paired by re-reading counts per record kind would cost a pass;
        # the pair table is exact when one backend serves one model, the common case.
        if len(gen.backends) == 1:
            b = next(iter(gen.backends))
            backend_models = {(b, m): n for m, n in gen.models.items()}
        else:
            backend_models = {
                (b, ", ".join(sorted(gen.models))): n for b, n in gen.backends.items()
            }
    return backend_models


def _cost_source(
    data: GenerationSummary, gen: GenerationSummary | None, generation_dir: Path | None
) -> tuple[GenerationSummary, str]:
    """Whose tokens and cost the card shows (the whole generation when given), and the note
    that relates them to the published records."""
    cost_src = gen if gen is not None else data
    note = ""
    if gen is not None and generation_dir is not None and gen is not data:
        note = (
            f"Totals over all {gen.n_records:,} generated records (including those later rejected); "
            f"the {data.n_records:,} published records account for "
            f"{data.input_tokens + data.output_tokens:,} tokens and ${data.cost_usd:,.4f}."
        )
    return cost_src, note


def build_context(
    dataset_dir: Path,
    *,
    generation_dir: Path | None,
    validation_dir: Path | None,
    repo_id: str | None,
    pretty_name: str,
) -> dict[str, Any]:
    """Everything the dataset card template needs, plus the list of what is missing."""
    missing: list[str] = []
    data = summarize_records(dataset_dir)
    gen, gen_label = _generation(dataset_dir, data, generation_dir, missing)
    val: ValidationSummary | None = None
    if validation_dir is not None and Path(validation_dir).is_dir():
        val = summarize_validation(validation_dir)
    else:
        missing.append(
            "validation funnel" + (f" ({validation_dir} not found)" if validation_dir else "")
        )
    gen_manifest = gen.manifest if gen is not None else None
    if generation_dir is not None and gen_manifest is None:
        missing.append("generation manifest.json")
    backend_models = _backend_models(gen)
    cols, label_rows = _label_table(data)
    funnel_rows = val.funnel if val else []
    emotion_rows = val.per_emotion if val else []
    cost_src, note = _cost_source(data, gen, generation_dir)
    if not cost_src.cost_usd and gen_manifest is not None:
        cost_src.cost_usd = gen_manifest.usd.total_including_cached
    configs = dataset_configs(dataset_dir)
    return {
        "pretty_name": pretty_name,
        "repo_id": repo_id,
        "version": __version__,
        "n_rows": data.n_records,
        "kinds": sorted(data.kinds.items()),
        "emotions": data.emotions,
        "configs": configs,
        "config_names": [c["config_name"] for c in configs],
        "gen": gen if gen is not None and gen.n_records else None,
        "gen_label": gen_label,
        "backend_models": [
            {"backend": b, "model": m, "n": n} for (b, m), n in sorted(backend_models.items())
        ],
        "prompts": sorted(
            (pid, sorted(h for h in hashes if h))
            for pid, hashes in (gen.prompts if gen else {}).items()
        ),
        "params": (gen.params.most_common(8) if gen else []),
        "n_topics": len(gen.topics) if gen else 0,
        "top_topics": gen.topics.most_common(5) if gen else [],
        "gen_facts": _scalar_facts(gen_manifest.model_dump(mode="json")) if gen_manifest else [],
        "val": val,
        "funnel_rows": funnel_rows,
        "funnel_cols": _table_columns(
            funnel_rows, "step" if funnel_rows and "step" in funnel_rows[0] else "validator"
        ),
        "emotion_rows": emotion_rows,
        "emotion_cols": _table_columns(emotion_rows, "emotion"),
        "reasons": val.reasons.most_common(10) if val else [],
        "label_cols": cols,
        "label_rows": label_rows,
        "cost": {
            "input_tokens": cost_src.input_tokens,
            "output_tokens": cost_src.output_tokens,
            "cache_hits": cost_src.cache_hits,
            "cost_usd": cost_src.cost_usd,
            "note": note,
        },
        "missing": missing,
    }


def write_dataset_card(
    dataset_dir: str | Path,
    *,
    generation_dir: str | Path | None = None,
    validation_dir: str | Path | None = None,
    repo_id: str | None = None,
    license: str = "cc-by-4.0",
    pretty_name: str | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Write (or update) ``dataset_dir/README.md`` (or ``out_dir/README.md``) and return its path.

    Args:
        dataset_dir: the folder to publish: ``data/*.parquet`` (a generation folder, or a
            validation folder's ``kept/``), or a validation folder with ``kept/`` and ``rejected/``.
        generation_dir: the generation stage folder, for totals over every generated record.
        validation_dir: the validation stage folder (funnel); found automatically when
            ``dataset_dir`` is its ``kept/`` subfolder.
        repo_id: the Hub id shown in the loading snippet.
        license: Hub license id, used when the card has none yet (a user's choice is kept).
        pretty_name: the card's title (default: the folder name).
        out_dir: where the card goes (default: ``dataset_dir``). The pipeline's cards stage
            writes into its own folder; the card's ``configs`` are relative to ``dataset_dir``,
            whose tree it heads when published.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    configs = dataset_configs(root)
    if not configs:
        raise InputError(
            f"{root}: no Parquet files (expected data/*.parquet or kept/data/*.parquet)"
        )
    if validation_dir is None:
        validation_dir = _guess_validation_dir(root)
    card_path = (Path(out_dir) if out_dir is not None else root) / CARD
    existing = load_existing(DatasetCard, card_path)
    old_meta = existing.data.to_dict() if existing is not None else {}
    name = pretty_name or old_meta.get("pretty_name") or _default_name(root)
    ctx = build_context(
        root,
        generation_dir=Path(generation_dir) if generation_dir else None,
        validation_dir=Path(validation_dir) if validation_dir else None,
        repo_id=repo_id,
        pretty_name=name,
    )
    n_rows = ctx["n_rows"] + (ctx["val"].rejected if ctx["val"] and len(configs) > 1 else 0)
    fresh = DatasetCardData(
        license=license,
        language=["en"],
        pretty_name=name,
        size_categories=[_size_category(n_rows)],
        task_categories=["text-generation", "text-classification"],
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        source_datasets=["original"],
        tags=[
            *DEFAULT_TAGS,
            *(["dialogue"] if any(k == "dialogue" for k, _ in ctx["kinds"]) else []),
        ],
        configs=configs,
    ).to_dict()
    owned = set(OWNED_KEYS) | ({"pretty_name"} if pretty_name else set())
    meta = merge_metadata(old_meta, fresh, owned=owned)
    body = render("dataset_card.md.j2", **ctx)
    text = merge_body(existing.text if existing is not None else None, body)
    card = DatasetCard(f"---\n{_yaml(meta)}---\n\n{text.lstrip()}")
    return write_card(card_path, str(card), "dataset")


def _yaml(meta: dict[str, Any]) -> str:
    return DatasetCardData(**meta).to_yaml(original_order=list(meta)) + "\n"


def _default_name(root: Path) -> str:
    base = root.parent.name if root.name in ("kept", "data") else root.name
    return base.replace("_", " ").replace("-", " ").strip() or "emocurate dataset"


def card_summary(card_path: str | Path) -> dict[str, Any]:
    """The YAML metadata of a written card (used by ``push`` and tests)."""
    return json.loads(json.dumps(DatasetCard.load(Path(card_path)).data.to_dict()))
