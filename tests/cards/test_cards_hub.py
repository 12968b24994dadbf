"""Publishing: dry-run trees read back with the same rows; pushes through a local fake Hub."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import huggingface_hub._commit_api as commit_api
import pyarrow.parquet as pq
import pytest
from fakes.hub_server import FakeHub
from huggingface_hub import constants

from emocurate.cards.hub import DRY_RUN_MARKER, push, safe_join
from emocurate.cli import main
from emocurate.errors import ConfigError, InputError, OutputError
from emocurate.vectors.vectorset import VectorSet

TOKEN = "hf_FAKEtok3n0nlyForTests1234567890"


def _copy(src: Path, tmp: Path) -> Path:
    shutil.copytree(src, tmp / src.name)
    return tmp / src.name


def _rows(files: list[Path]) -> int:
    return sum(pq.read_metadata(f).num_rows for f in files)


def test_dry_run_dataset_reads_back_same_rows(stages: dict[str, Path], tmp_path: Path) -> None:
    import datasets

    val = _copy(stages["val"], tmp_path)
    out = tmp_path / "tree"
    res = push(val, "org/emo", dry_run=out)
    assert res["checked"] == {"default": 24, "rejected": 6}
    assert sorted(res["files"]) == [
        "README.md",
        "kept/data/part-00000.parquet",
        "manifest.json",
        "rejected/data/story.parquet",
    ]
    listed = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert listed == {*res["files"], DRY_RUN_MARKER}
    # independent read-back: same rows as the source
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    src = pq.read_table(val / "kept" / "data" / "part-00000.parquet").to_pylist()
    assert sorted(r["id"] for r in ds.to_list()) == sorted(r["id"] for r in src)
    assert ds.to_list()[0]["provenance"]["prompt_hash"] == "sha256:abc123def456"
    assert 'load_dataset("org/emo"' in (out / "README.md").read_text()
    # a rerun replaces an earlier dry run; a foreign non-empty folder is refused
    assert push(val, "org/emo", dry_run=out)["checked"]["default"] == 24
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError):
        push(val, "org/emo", dry_run=tmp_path / "other")


def test_dry_run_vectors(stages: dict[str, Path], tmp_path: Path) -> None:
    vec = _copy(stages["vec"], tmp_path)
    res = push(vec, "org/emo-vectors", dry_run=tmp_path / "tree")
    assert res["repo_type"] == "model" and res["checked"] == {"vectors": 6, "layers": 1}
    assert set(res["files"]) == {
        "README.md",
        "evaluation.json",
        "figures/geometry.svg",
        "vectors.safetensors",
        "vectorset.json",
    }
    assert VectorSet.load(tmp_path / "tree").names == VectorSet.load(vec).names


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_dry_run_only_reads_the_source(stages: dict[str, Path], tmp_path: Path) -> None:
    gen = _copy(stages["gen"], tmp_path)
    (gen / "README.md").unlink(missing_ok=True)
    before = _snapshot(gen)
    res = push(gen, "org/emo", dry_run=tmp_path / "tree")
    assert "README.md" in res["files"] and (tmp_path / "tree" / "README.md").exists()
    assert _snapshot(gen) == before  # no card written into the source
    vec = _copy(stages["vec"], tmp_path)
    (vec / "README.md").unlink(missing_ok=True)
    vbefore = _snapshot(vec)
    push(vec, "org/v", dry_run=tmp_path / "vtree")
    assert _snapshot(vec) == vbefore


def test_dry_run_never_deletes_a_folder_it_did_not_make(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    gen = _copy(stages["gen"], tmp_path)
    before = _snapshot(gen)
    for target in (gen, gen / "data", gen.parent):  # the source, inside it, around it
        with pytest.raises(OutputError, match="overlaps the source"):
            push(gen, "org/emo", dry_run=target)
    other = _copy(stages["val"], tmp_path)  # only publishable files, but not a dry-run tree
    obefore = _snapshot(other)
    with pytest.raises(OutputError, match="not made by an earlier dry run"):
        push(gen, "org/emo", dry_run=other)
    assert _snapshot(gen) == before and _snapshot(other) == obefore
    tree = tmp_path / "tree"
    push(gen, "org/emo", dry_run=tree)
    (tree / "stale.txt").write_text("from an earlier dry run")
    push(gen, "org/emo", dry_run=tree)  # its own earlier tree is replaced
    assert not (tree / "stale.txt").exists() and (tree / DRY_RUN_MARKER).exists()


def test_published_names_cannot_leave_the_tree(stages: dict[str, Path], tmp_path: Path) -> None:
    for bad in ("../x.parquet", "data/../../x", "/etc/passwd", "a//b", "./x"):
        with pytest.raises(OutputError, match="refusing file name"):
            safe_join(tmp_path, bad)
    assert safe_join(tmp_path, "data/x.parquet") == tmp_path / "data" / "x.parquet"
    gen = _copy(stages["gen"], tmp_path)
    secret = tmp_path / "secret.parquet"
    shutil.copy2(next((gen / "data").glob("*.parquet")), secret)
    (gen / "data" / "zz.parquet").symlink_to(secret)
    with pytest.raises(InputError, match="links outside the folder"):
        push(gen, "org/emo", dry_run=tmp_path / "tree")


def test_bad_repo_id(stages: dict[str, Path], tmp_path: Path) -> None:
    for bad in ("noslash", "a/b/c", "org/bad name", "org/-x"):
        with pytest.raises(ConfigError):
            push(stages["gen"], bad, dry_run=tmp_path / "t")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    server = FakeHub().start()
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    # the suite runs with HF_HUB_OFFLINE=1; only this 127.0.0.1 fake is reachable here
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(
        commit_api, "is_xet_available", lambda: False
    )  # CI may have hf_xet installed
    monkeypatch.setenv("HF_HOME", "/nonexistent-emocurate-hf-home")
    yield server
    server.stop()


def test_push_dataset_to_fake_hub(
    stages: dict[str, Path],
    tmp_path: Path,
    hub: FakeHub,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    val = _copy(stages["val"], tmp_path)
    res = push(val, "org/emo", private=True, token=TOKEN, endpoint=hub.url)
    files = hub.files("org/emo", "dataset")
    assert sorted(files) == sorted(res["files"])
    assert hub.repos[("dataset", "org/emo")].private is True
    assert (
        files["kept/data/part-00000.parquet"]
        == (val / "kept" / "data" / "part-00000.parquet").read_bytes()
    )
    assert b'load_dataset("org/emo"' in files["README.md"]
    paths = [r.path for r in hub.requests]
    assert any(p.endswith(".git/info/lfs/objects/batch") for p in paths)  # parquet went through LFS
    assert any("/preupload/main" in p for p in paths) and any("/commit/main" in p for p in paths)
    # the token was used, only ever in the Authorization header
    auth = [
        r.headers.get("Authorization") or r.headers.get("authorization")
        for r in hub.requests
        if r.method == "POST"
    ]
    assert all(a == f"Bearer {TOKEN}" for a in auth if a)
    for r in hub.requests:
        assert TOKEN.encode() not in r.body
        assert all(TOKEN not in v for k, v in r.headers.items() if k.lower() != "authorization")
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err + caplog.text
    for tree in (val, tmp_path):
        for f in tree.rglob("*"):
            assert not f.is_file() or TOKEN.encode() not in f.read_bytes(), f
    assert all(TOKEN.encode() not in data for data in files.values())
    assert TOKEN not in repr(res)


def test_push_vectors_to_branch(stages: dict[str, Path], tmp_path: Path, hub: FakeHub) -> None:
    vec = _copy(stages["vec"], tmp_path)
    res = push(vec, "org/vecs", revision="v1", token=TOKEN, endpoint=hub.url)
    assert res["revision"] == "v1"
    files = hub.files("org/vecs", "model", branch="v1")
    assert set(files) == {
        "README.md",
        "evaluation.json",
        "figures/geometry.svg",
        "vectors.safetensors",
        "vectorset.json",
    }
    assert files["vectors.safetensors"] == (vec / "vectors.safetensors").read_bytes()
    # pushing again to an existing repo and branch works (exist_ok)
    push(vec, "org/vecs", revision="v1", token=TOKEN, endpoint=hub.url)
    assert len(hub.repos[("model", "org/vecs")].commits) == 2


def test_push_error_is_one_line_without_token(
    stages: dict[str, Path],
    tmp_path: Path,
    hub: FakeHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "")
    gen = _copy(stages["gen"], tmp_path)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(SystemExit) as exc:
        main(["push", str(gen), "--repo-id", "org/x"])  # no token: the fake answers 401
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "401" in err


def test_cli_push_dry_run(
    stages: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = _copy(stages["gen"], tmp_path)
    main(["push", str(gen), "--repo-id", "org/gen", "--dry-run", str(tmp_path / "tree")])
    out = capsys.readouterr().out
    assert "dataset org/gen: 3 files, dry run written to" in out
    assert _rows(sorted((tmp_path / "tree" / "data").glob("*.parquet"))) == 30
