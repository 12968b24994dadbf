"""Curation policies on a hand-made scores table, and end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from emocurate.corpus.curate import CuratePolicy, curate, decide
from emocurate.corpus.rows import CorpusScore, rows_table
from emocurate.errors import ConfigError
from emocurate.io import write_table
from emocurate.records import Flag

NAMES = ["happy", "afraid"]


def _row(
    i: int, dom: str, distress_max: float, flags: list[str], recovery: float | None = None
) -> CorpusScore:
    return CorpusScore(
        doc_id=f"d{i}",
        n_tokens=100,
        dominant=[dom],
        emotion_mean={"happy": 0.1, "afraid": distress_max / 2},
        emotion_p95={"happy": 0.2, "afraid": distress_max},
        metrics={"distress_max": distress_max, "recovery_rate": recovery},
        flags=[Flag(kind=k, start=0, end=5, severity=distress_max) for k in flags],
    )


def _scores(tmp_path: Path, rows: list[CorpusScore]) -> Path:
    write_table(tmp_path / "scores" / "data" / "shard-00000.parquet", rows_table(rows, NAMES))
    return tmp_path / "scores"


POLICY = {
    "rules": [
        {
            "name": "too_distressed",
            "action": "drop",
            "when": {"metric": "distress_max", "op": ">", "value": 3},
        },
        {"name": "unresolved", "action": "flag", "when": {"flag": "unresolved_end"}},
        {
            "name": "severe_episode",
            "action": "drop",
            "when": {"flag": "distress_episode", "min_severity": 2.5},
        },
        {
            "name": "whitelist",
            "action": "keep",
            "when": {
                "all": [
                    {"flag": "distress_episode"},
                    {"metric": "recovery_rate", "op": ">=", "value": 1.0},
                ]
            },
        },
    ],
}


def test_decisions_reasons_and_summary() -> None:
    rows = [
        _row(0, "happy", 0.5, []),
        _row(1, "afraid", 4.0, ["unresolved_end"]),  # drop (too_distressed) + matched unresolved
        _row(2, "afraid", 1.0, ["unresolved_end"]),  # flag
        _row(3, "afraid", 2.8, ["distress_episode"], 1.0),  # severe but whitelisted -> keep
        _row(4, "afraid", 2.8, ["distress_episode"], 0.0),  # drop (severe_episode)
        _row(5, "happy", 0.1, [], None),
    ]
    df = pl.from_arrow(rows_table(rows, NAMES))
    assert isinstance(df, pl.DataFrame)
    out, summary = decide(df, CuratePolicy.model_validate(POLICY))
    assert out["decision"].to_list() == ["keep", "drop", "flag", "keep", "drop", "keep"]
    assert out["reasons"].to_list()[1] == ["too_distressed", "unresolved"]
    assert out["reasons"].to_list()[4] == ["severe_episode"]
    s = {r["rule"]: r for r in summary.to_dicts()}
    assert s["too_distressed"]["matched"] == 1 and s["too_distressed"]["decided"] == 1
    assert s["unresolved"]["matched"] == 2 and s["unresolved"]["decided"] == 1
    assert s["severe_episode"]["matched"] == 2 and s["severe_episode"]["decided"] == 1
    assert s["whitelist"]["matched"] == 1
    assert out["weight"].to_list() == [1.0] * 6


def _dom_counts(out: pl.DataFrame) -> dict[str, int]:
    kept = out.filter(pl.col("decision") != "drop")
    return {
        str(r["d"]): int(r["len"])
        for r in kept.select(pl.col("dominant").list.first().alias("d"))
        .group_by("d")
        .len()
        .to_dicts()
    }


def _rows_by(counts: dict[str, int]) -> list[CorpusScore]:
    rows, i = [], 0
    for emo, n in counts.items():
        for _ in range(n):
            rows.append(_row(i, emo, 0.1, []))
            i += 1
    return rows


def test_rebalance_caps_dominant_share_deterministically() -> None:
    rows = [_row(i, "afraid" if i < 16 else "happy", 0.1, []) for i in range(20)]
    df = pl.from_arrow(rows_table(rows, NAMES))
    pol = CuratePolicy.model_validate({"rebalance": {"max_share": 0.5, "min_keep": 2}})
    out, summary = decide(df, pol)  # type: ignore[arg-type]
    counts = _dom_counts(out)
    total = sum(counts.values())
    # The invariant is on the FINAL kept set: no emotion above max_share of what is kept.
    assert all(n <= 0.5 * total for n in counts.values()), counts
    # ... and nothing more is cut than needed: 4 happy allow at most 4 afraid (4/8 = 50%).
    assert counts == {"afraid": 4, "happy": 4}
    dropped = out.filter(pl.col("decision") == "drop")
    assert dropped.height == 12
    assert dropped["reasons"].to_list() == [["rebalance:afraid"]] * 12
    again, _ = decide(df, pol)  # type: ignore[arg-type]
    assert again["decision"].to_list() == out["decision"].to_list()
    # deterministic by id hash, not by row order
    shuffled, _ = decide(df.reverse(), pol)  # type: ignore[arg-type]
    assert set(shuffled.filter(pl.col("decision") == "drop")["doc_id"].to_list()) == set(
        dropped["doc_id"].to_list()
    )
    assert summary.filter(pl.col("rule") == "rebalance")["matched"].item() == 12


def test_rebalance_enforces_max_share_on_final_set() -> None:
    """The reviewer's case: with max_share 0.3 two big emotions stayed at 44% each."""
    rows = _rows_by({"afraid": 40, "happy": 40, "sad": 5, "calm": 5})
    names = ["afraid", "happy", "sad", "calm"]
    df = pl.from_arrow(rows_table(rows, names))
    pol = CuratePolicy.model_validate({"rebalance": {"max_share": 0.3, "min_keep": 2}})
    out, _ = decide(df, pol)  # type: ignore[arg-type]
    counts = _dom_counts(out)
    total = sum(counts.values())
    assert all(n / total <= 0.3 for n in counts.values()), counts
    # maximal: the small emotions are untouched, and one more afraid/happy would break the cap
    assert counts["sad"] == 5 and counts["calm"] == 5
    assert (counts["afraid"] + 1) / (total + 1) > 0.3
    assert counts == {"afraid": 7, "happy": 7, "sad": 5, "calm": 5}  # 7/24 = 29%; 8/26 = 31%


def test_rebalance_respects_min_keep() -> None:
    rows = _rows_by({"afraid": 12, "happy": 3})
    df = pl.from_arrow(rows_table(rows, NAMES))
    pol = CuratePolicy.model_validate({"rebalance": {"max_share": 0.3, "min_keep": 5}})
    out, _ = decide(df, pol)  # type: ignore[arg-type]
    # afraid is cut to min_keep (it cannot reach 30% with only 3 happy), happy (< min_keep) is untouched
    assert _dom_counts(out) == {"afraid": 5, "happy": 3}


def test_weights_normalised_and_ordered() -> None:
    rows = [
        _row(0, "happy", 0.1, [], 1.0),
        _row(1, "happy", 0.1, [], 0.0),
        _row(2, "happy", 0.1, [], None),
    ]
    df = pl.from_arrow(rows_table(rows, NAMES))
    pol = CuratePolicy.model_validate(
        {"weights": {"terms": [{"metric": "recovery_rate", "scale": 1.0}]}}
    )
    out, _ = decide(df, pol)  # type: ignore[arg-type]
    w = out["weight"].to_list()
    assert w[0] > w[1] == pytest.approx(w[2])
    assert sum(w) / 3 == pytest.approx(1.0)


def test_bad_policies_are_one_line_config_errors(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("rules:\n  - name: x\n    action: explode\n    when: {flag: escalation}\n")
    with pytest.raises(ConfigError, match="invalid policy at 'rules.0.action'"):
        CuratePolicy.load(p)
    p.write_text("rules: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        CuratePolicy.load(p)
    df = pl.from_arrow(rows_table([_row(0, "happy", 0.1, [])], NAMES))
    pol = CuratePolicy.model_validate(
        {
            "rules": [
                {"name": "x", "action": "drop", "when": {"metric": "mean__no_such", "value": 1}}
            ]
        }
    )
    with pytest.raises(ConfigError, match="unknown metric 'mean__no_such'"):
        decide(df, pol)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        CuratePolicy.model_validate({"rules": [{"name": "x", "action": "drop", "when": {}}]})


def test_curate_writes_kept_excluded_and_manifest(tmp_path: Path) -> None:
    rows = [_row(0, "happy", 0.5, []), _row(1, "afraid", 4.0, ["unresolved_end"])]
    sdir = _scores(tmp_path, rows)
    pol = tmp_path / "p.yaml"
    import yaml

    pol.write_text(yaml.safe_dump(POLICY))
    m = curate(sdir, pol, tmp_path / "cur", untrusted="force")
    assert m.guardrail.decision == "forced"
    assert (m.kept, m.flagged, m.dropped, m.rows_in) == (1, 0, 1, 2)
    exc = pl.read_parquet(tmp_path / "cur" / "excluded" / "excluded.parquet")
    assert exc["doc_id"].to_list() == ["d1"] and exc["reasons"].to_list() == [
        ["too_distressed", "unresolved"]
    ]
    assert json.loads((tmp_path / "cur" / "manifest.json").read_text())["stage"] == "curate"


def test_score_then_curate_cli_with_text(tmp_path: Path, vs_dir: Path) -> None:
    from emocurate.cli import main

    from .conftest import write_jsonl

    src = write_jsonl(tmp_path / "c.jsonl", 6)
    main(
        [
            "score",
            str(src),
            "--vectors",
            str(vs_dir),
            "--out",
            str(tmp_path / "s"),
            "--window",
            "64",
        ]
    )
    policy = Path(__file__).parents[2] / "emocurate" / "data" / "policy_default.yaml"
    main(
        [
            "curate",
            str(tmp_path / "s"),
            "--policy",
            str(policy),
            "--out",
            str(tmp_path / "c"),
            "--corpus",
            str(src),
            "--force",
        ]
    )
    kept = pl.read_parquet(tmp_path / "c" / "data" / "kept.parquet")
    exc_file = tmp_path / "c" / "excluded" / "excluded.parquet"
    n_exc = pl.read_parquet(exc_file).height if exc_file.exists() else 0  # not written if empty
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert n_exc == m["dropped"] and kept.height + n_exc == 6
    assert kept["text"].null_count() == 0 and "weight" in kept.columns
    with pytest.raises(SystemExit):
        main(
            [
                "curate",
                str(tmp_path / "nothing"),
                "--policy",
                str(policy),
                "--out",
                str(tmp_path / "x"),
            ]
        )


def test_curate_finds_texts_whatever_the_path_spelling(
    tmp_path: Path, vs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated ids (no --id-field): score ``pp.jsonl``, curate with ``./pp.jsonl`` or an absolute path."""
    from emocurate.cli import main

    from .conftest import write_jsonl

    write_jsonl(tmp_path / "pp.jsonl", 4)
    monkeypatch.chdir(tmp_path)
    main(["score", "pp.jsonl", "--vectors", str(vs_dir), "--out", "s", "--window", "64"])
    policy = tmp_path / "keep_all.yaml"
    policy.write_text("rules: []\n")
    for spelling in ("./pp.jsonl", str(tmp_path / "pp.jsonl")):
        main(["curate", "s", "--policy", str(policy), "--out", "c", "--corpus", spelling])
        kept = pl.read_parquet(tmp_path / "c" / "data" / "kept.parquet")
        assert kept.height == 4 and kept["text"].null_count() == 0


def _with_evaluation(tmp_path: Path, sdir: Path, acc: float, ci: tuple[float, float]) -> Path:
    """Point the scores manifest at a vector folder whose evaluation says ``acc`` [ci]."""
    from emocurate.artifacts import ScoreManifest, VectorsRef

    vdir = tmp_path / "vectors"
    vdir.mkdir(exist_ok=True)
    (vdir / "evaluation.json").write_text(
        json.dumps({"accuracy": acc, "accuracy_ci": list(ci), "chance": 0.25, "n_heldout": 40})
    )
    ScoreManifest(inputs=[], rows_in=2, scored=2, vectors=VectorsRef(dir=str(vdir))).save(sdir)
    return vdir


def test_drops_refused_when_vectors_overlap_chance(tmp_path: Path) -> None:
    """Dropping on vectors that do not beat chance would remove data on noise: refused, with
    the reason and the way out in one line; --flag-only keeps everything as flags."""
    import yaml

    from emocurate.errors import InputError

    rows = [_row(0, "happy", 0.5, []), _row(1, "afraid", 4.0, ["unresolved_end"])]
    sdir = _scores(tmp_path, rows)
    _with_evaluation(tmp_path, sdir, 0.27, (0.20, 0.34))
    pol = tmp_path / "p.yaml"
    pol.write_text(yaml.safe_dump(POLICY))
    with pytest.raises(
        InputError, match=r"refuses to drop \(rule too_distressed\).*overlaps chance 0.25.*--force"
    ):
        curate(sdir, pol, tmp_path / "cur")
    assert not (tmp_path / "cur").exists()
    m = curate(sdir, pol, tmp_path / "cur", untrusted="flag-only")
    assert (m.kept, m.flagged, m.dropped) == (1, 1, 0)
    assert m.guardrail.decision == "flag-only" and not m.guardrail.trusted
    # no evaluation at all is not trust either
    (tmp_path / "vectors" / "evaluation.json").unlink()
    with pytest.raises(InputError, match="no held-out evaluation"):
        curate(sdir, pol, tmp_path / "cur2")


def test_drops_allowed_when_vectors_beat_chance(tmp_path: Path) -> None:
    import yaml

    rows = [_row(0, "happy", 0.5, []), _row(1, "afraid", 4.0, ["unresolved_end"])]
    sdir = _scores(tmp_path, rows)
    _with_evaluation(tmp_path, sdir, 0.61, (0.52, 0.70))
    pol = tmp_path / "p.yaml"
    pol.write_text(yaml.safe_dump(POLICY))
    m = curate(sdir, pol, tmp_path / "cur")
    assert m.dropped == 1 and m.guardrail.decision == "allowed"
    # a policy without drops needs no trust at all
    (tmp_path / "vectors" / "evaluation.json").unlink()
    pol.write_text(yaml.safe_dump({"rules": [POLICY["rules"][1]]}))
    m = curate(sdir, pol, tmp_path / "cur3")
    assert m.guardrail.decision == "not needed" and m.flagged == 1


def test_default_policy_does_not_rebalance(tmp_path: Path) -> None:
    """A near-constant dominant emotion with no rule firing must not drop most of a corpus."""
    policy = CuratePolicy.load(
        Path(__file__).parents[2] / "emocurate" / "data" / "policy_default.yaml"
    )
    rows = [_row(i, "happy", 0.1, []) for i in range(40)] + [_row(40, "afraid", 0.1, [])]
    df = pl.from_arrow(rows_table(rows, NAMES))
    out, _ = decide(df.with_columns(n_tokens=pl.lit(100)), policy)  # type: ignore[arg-type]
    assert (out["decision"] == "drop").sum() == 0


def test_cli_accepts_bundled_policy(tmp_path: Path) -> None:
    from emocurate.cli import main

    rows = [_row(0, "happy", 0.5, []), _row(1, "afraid", 4.0, ["unresolved_end"])]
    sdir = _scores(tmp_path, rows)
    _with_evaluation(tmp_path, sdir, 0.27, (0.20, 0.34))
    main(
        [
            "curate",
            str(sdir),
            "--policy",
            "bundled:default",
            "--out",
            str(tmp_path / "c"),
            "--flag-only",
        ]
    )
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["guardrail"]["decision"] == "flag-only" and m["dropped"] == 0


def _policy_file(tmp_path: Path, when: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(f"rules:\n  - name: r\n    action: drop\n    when: {when}\n")
    return p


def test_unknown_flag_name_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    p = _policy_file(tmp_path, "{flag: escalaton}")
    with pytest.raises(ConfigError, match=r"p\.yaml.*unknown flag 'escalaton'.*'escalation'"):
        CuratePolicy.load(p)
    nested = _policy_file(tmp_path, "{any: [{flag: unresolved_end}, {flag: mirorring}]}")
    with pytest.raises(ConfigError, match=r"rules\.0\.when.*unknown flag 'mirorring'.*'mirroring'"):
        CuratePolicy.load(nested)


def test_unknown_metric_name_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    p = _policy_file(tmp_path, "{metric: distres_max, op: '>', value: 2}")
    with pytest.raises(ConfigError, match=r"unknown metric 'distres_max'.*'distress_max'"):
        CuratePolicy.load(p)
    w = tmp_path / "w.yaml"
    w.write_text("weights:\n  terms:\n    - {metric: recovery_rte, scale: 1.0}\n")
    with pytest.raises(ConfigError, match=r"unknown metric 'recovery_rte'.*'recovery_rate'"):
        CuratePolicy.load(w)
    ok = _policy_file(tmp_path, "{metric: p95__afraid, op: '>', value: 2}")
    assert CuratePolicy.load(ok).rules[0].when.metric == "p95__afraid"  # per-emotion columns
    df = pl.from_arrow(rows_table([_row(0, "happy", 0.1, [])], NAMES))
    pol = CuratePolicy.model_validate(
        {"rules": [{"name": "x", "action": "drop", "when": {"metric": "mean__hapy", "value": 1}}]}
    )
    with pytest.raises(ConfigError, match=r"unknown metric 'mean__hapy'.*'mean__happy'"):
        decide(df, pol)  # type: ignore[arg-type]


def test_flag_kinds_match_what_regulation_emits_and_the_docs() -> None:
    import re

    import emocurate.corpus.regulation as reg
    from emocurate.records import FLAG_KINDS

    src = Path(reg.__file__).read_text("utf-8")
    emitted = set(re.findall(r'Flag\(\s*kind="([a-z_]+)"', src))
    assert emitted and set(FLAG_KINDS) == emitted
    docs = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text("utf-8")
    assert all(f"| `{k}` |" in docs for k in FLAG_KINDS)
    CuratePolicy.load(Path(reg.__file__).parent.parent / "data" / "policy_default.yaml")


def _parquet_folders(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("*.parquet")})


def test_every_curated_parquet_folder_loads_with_datasets_even_when_nothing_is_dropped(
    tmp_path: Path,
) -> None:
    """Flag-only curation drops nothing; an empty excluded.parquet made
    ``load_dataset("parquet", data_dir=...)`` fail (ArrowInvalid: BatchSize must be greater
    than 0). Every Parquet folder written must load, and every config the README declares."""
    import datasets
    import yaml

    rows = [_row(0, "happy", 0.5, []), _row(1, "afraid", 4.0, ["unresolved_end"])]
    sdir = _scores(tmp_path, rows)
    _with_evaluation(tmp_path, sdir, 0.27, (0.20, 0.34))
    pol = tmp_path / "p.yaml"
    pol.write_text(yaml.safe_dump(POLICY))
    out = tmp_path / "cur"
    m = curate(sdir, pol, out, untrusted="flag-only")
    assert m.dropped == 0
    folders = _parquet_folders(out)
    assert out / "data" in folders
    for d in folders:
        ds = datasets.load_dataset(
            "parquet", data_dir=str(d), split="train", cache_dir=str(tmp_path / "hf")
        )
        assert len(ds) > 0, d
    readme = (out / "README.md").read_text()
    configs = yaml.safe_load(readme.split("---")[1])["configs"]
    for c in configs:
        ds = datasets.load_dataset(
            str(out), c["config_name"], split="train", cache_dir=str(tmp_path / "hf")
        )
        assert len(ds) > 0, c
    assert "excluded" not in [c["config_name"] for c in configs]
    assert "Nothing was dropped" in readme
