"""Artifact fields whose shape is known are typed, and write the JSON they wrote as dicts
(issue 20, item 5)."""

from __future__ import annotations

import json

from emocurate.artifacts import Evaluation, EvaluationSummary, VectorSetMeta


def _meta(**kw: object) -> VectorSetMeta:
    return VectorSetMeta(
        names=["joy"],
        layers=[1],
        default_layer=1,
        model_id="m",
        hidden_size=4,
        n_model_layers=2,
        versions={},
        **kw,
    )


def test_evaluation_summary_writes_only_what_was_set() -> None:
    """A set without an evaluation writes ``{}``; a summary keeps its explicit nulls (an
    evaluation without a majority baseline) and the order :meth:`Evaluation.summary` wrote."""
    assert json.loads(_meta().model_dump_json())["evaluation"] == {}
    ev = Evaluation(layer=1, chosen_layer=1, labels=["a", "b"], chance=0.5, n=4, seeds=[0, 1])
    ev.accuracy, ev.accuracy_sd, ev.accuracy_ci = 0.75, 0.1, (0.5, 1.0)
    written = json.loads(_meta(evaluation=ev.summary()).model_dump_json())["evaluation"]
    assert list(written.items()) == [
        ("chance", 0.5),
        ("n", 4),
        ("seeds", 2),
        ("accuracy", 0.75),
        ("accuracy_sd", 0.1),
        ("accuracy_ci_low", 0.5),
        ("accuracy_ci_high", 1.0),
        ("top3", None),
        ("majority", None),
        ("auroc_mean", None),
    ]


def test_older_summaries_read_back_and_round_trip() -> None:
    """Sets written before ``seeds`` was kept hold five scalars; they read as attributes and
    are written back unchanged."""
    old = {"accuracy": 0.8, "top3": 1.0, "chance": 0.25, "auroc_mean": 0.9, "n": 8}
    meta = _meta(evaluation=old)
    assert isinstance(meta.evaluation, EvaluationSummary)
    assert meta.evaluation.accuracy == 0.8 and meta.evaluation.seeds is None
    back = VectorSetMeta.model_validate_json(meta.model_dump_json())
    assert json.loads(back.model_dump_json())["evaluation"] == old


def test_generate_manifest_config_is_the_generate_config(tmp_path) -> None:
    """The run writes its ``GenerateConfig`` as JSON; it reads back as the model, and the file
    holds what ``model_dump(mode="json")`` gave before the field was typed."""
    from emocurate.artifacts import GenerateManifest
    from emocurate.configs import GenerateConfig

    cfg = GenerateConfig(kind="stories", backend="fake", model="m", topics="2", seed=3)
    GenerateManifest(
        kind="stories",
        backend="fake",
        model="m",
        planned_requests=1,
        config=cfg.model_dump(mode="json"),
    ).save(tmp_path)
    written = json.loads((tmp_path / "manifest.json").read_text())["config"]
    assert written == cfg.model_dump(mode="json")
    assert list(written) == list(cfg.model_dump(mode="json"))
    back = GenerateManifest.read(tmp_path)
    assert back is not None and isinstance(back.config, GenerateConfig)
    assert back.config.seed == 3 and back.config.topics == "2"
    empty = GenerateManifest(kind="stories", backend="f", model="m", planned_requests=0, config={})
    assert empty.config is None


def test_curate_manifest_policy_is_the_policy(tmp_path) -> None:
    """The curated folder's manifest holds the policy applied as the policy model (a reader
    gets its rules as attributes), written as ``model_dump(mode="json")`` wrote it."""
    from emocurate.artifacts import CurateManifest, Guardrail
    from emocurate.corpus.policy import CuratePolicy, flag_only

    pol = flag_only(CuratePolicy.load("emocurate/data/policy_default.yaml"))
    guard = Guardrail(trusted=True, reason="", risky_actions=[], decision="not needed")
    CurateManifest(scores_dir="s", policy=pol, rows_in=0, kept=0, guardrail=guard).save(tmp_path)
    written = json.loads((tmp_path / "manifest.json").read_text())["policy"]
    assert written == pol.model_dump(mode="json")
    back = CurateManifest.read(tmp_path)
    assert back is not None and back.policy == pol
    assert [r.action for r in back.policy.rules] == [r.action for r in pol.rules]
    assert "drop" not in {r.action for r in back.policy.rules}


def test_reading_artifacts_loads_no_table_or_model_library() -> None:
    """The policy model moved out of the polars curation module so that the artifacts module
    (every reader of a run) can type the curate manifest's policy without loading polars."""
    import subprocess
    import sys

    code = (
        "import sys, emocurate.artifacts\n"
        "print([m for m in ('polars', 'torch', 'transformers') if m in sys.modules])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"
