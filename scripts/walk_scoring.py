"""Trace ONE document from ``emocurate score`` to its written shard row; print the walk as JSON.

Issue 20 ("one path for scoring") counts the walk a document takes through the package: the
function stops, the modules they live in, how often the walk comes back to a module it had
left, and how many representations (types) the document passes through. This script measures
it instead of reading it off the code, so it can be rerun after a change:

* a tiny calibrated VectorSet on the embedded ``stories260K`` model (random directions, a
  neutral reference; as ``tests/corpus/conftest.py`` builds one) and a one-row JSONL;
* ``emocurate score`` run through the CLI under ``sys.setprofile``/``threading.setprofile``
  (the reader and writer run on threads), only ``emocurate/`` frames looked at;
* a frame is a *stop* when the document is in its arguments (at its first call), in a value it
  returns or yields, or in a container/object among them (a list of Docs, a chunk of Prepared
  documents); a *caller* stop is an ``emocurate`` frame on the stack above a stop (the command,
  ``score_corpus``, the engine loop), so the walk is connected from the command down;
* the walk ends when ``write_shard`` returns (the row is on disk); the manifest/summary after
  it read the shards back and are not part of the document's path.

The document is recognised by content: its text (``str``/``bytes``), an object or dict whose
``doc_id`` is the document's, an ``Analysis`` (there is only one document), a pyarrow table
with the document's id. A *representation* is the type of such a direct holder (not a list or a
chunk that contains one, not the bare text string).

Usage: ``PYTHONPATH=$PWD python scripts/walk_scoring.py [--text "..."]`` (a few seconds on CPU).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch

import emocurate

PKG = str(Path(emocurate.__file__).resolve().parent)
TEXT = (
    "Lily was playing in the garden. Suddenly a big dog ran at her and barked. She was very "
    "scared and she cried. Her mom came and hugged her. Lily felt safe and calm again."
)
NEUTRAL = [
    "Once upon a time there was a boy named Tim. He had a red ball. He went to the park.",
    "The sun was up. The bird sat on a tree. A girl walked to the shop with her mom.",
    "There was a big box in the room. It was brown. The dog sat next to the box.",
]
NAMES = ["happy", "sad", "afraid", "angry", "calm", "desperate", "relieved", "surprised"]


def build_vectors(root: Path) -> Path:
    """A calibrated VectorSet on stories260K (random directions, neutral reference)."""
    from emocurate.configs import ScoreConfig
    from emocurate.corpus.calibrate import calibrate
    from emocurate.vectors.capture import token_activations
    from emocurate.vectors.models import default_layer, load_model
    from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

    lm = load_model("stories260K")
    layer = default_layer(lm.n_layers)
    meta = VectorSetMeta(
        names=NAMES,
        layers=[layer],
        default_layer=layer,
        model_id="stories260K",
        hidden_size=lm.hidden_size,
        n_model_layers=lm.n_layers,
    )
    gen = torch.Generator().manual_seed(0)
    vs = VectorSet({layer: torch.randn(len(NAMES), lm.hidden_size, generator=gen)}, meta)
    acts = torch.cat([a[1:] for _, _, a in token_activations(lm, NEUTRAL, layer)])
    vs.set_reference(layer, acts)
    d = root / "vectors"
    vs.save(d)
    ref = root / "neutral.jsonl"
    ref.write_text("".join(json.dumps({"text": t}) + "\n" for t in NEUTRAL * 4))
    calibrate(d, [str(ref)], ScoreConfig(progress=False), lm=lm)
    return d


class Walk:
    """The profiler: records stops (frames holding the document) and their callers."""

    def __init__(self, text: str) -> None:
        self.text, self.raw = text, text.encode()
        self.doc_id: str | None = None
        self.seq = itertools.count()
        self.first: dict[int, tuple[int, FrameType]] = {}  # id(frame) -> (seqno, frame kept alive)
        self.stops: dict[int, dict[str, Any]] = {}  # id(frame) -> stop
        self.reps: list[str] = []
        self.wrappers: set[str] = set()  # types that hold the document object as a field
        self.done = False
        self.lock = threading.Lock()

    # -- recognising the document --------------------------------------------------------
    def rep(self, obj: Any, wrapper: bool = True) -> str | None:
        """The representation label if ``obj`` IS the document (or wraps it directly), else None."""
        t = type(obj)
        if isinstance(obj, str | bytes):
            return None
        if isinstance(obj, dict):
            holds = obj.get("doc_id") is not None and obj.get("doc_id") == self.doc_id
            if holds or any(isinstance(v, str) and v == self.text for v in obj.values()):
                return self.dict_label(obj)
            return None
        mod = getattr(t, "__module__", "") or ""
        if mod.startswith("pyarrow") and t.__name__ == "Table":
            if "doc_id" in obj.column_names and self.doc_id in obj.column("doc_id").to_pylist():
                return "pyarrow.Table"
            return None
        if not mod.startswith("emocurate"):
            return None
        if t.__name__ == "Analysis":
            return f"{mod}.Analysis"
        if getattr(obj, "text", None) == self.text and isinstance(
            getattr(obj, "doc_id", None), str
        ):
            self.doc_id = self.doc_id or obj.doc_id
            return f"{mod}.{t.__name__}"
        if self.doc_id is not None and getattr(obj, "doc_id", None) == self.doc_id:
            return f"{mod}.{t.__name__}"
        # A wrapper: one document plus more (e.g. a row with its trace).
        if wrapper and any(
            self.rep(v, wrapper=False) for v in getattr(obj, "__dict__", {}).values()
        ):
            self.wrappers.add(f"{mod}.{t.__name__}")
            return f"{mod}.{t.__name__}"
        return None

    @staticmethod
    def dict_label(d: dict[Any, Any]) -> str:
        for key, what in (
            ("n_flags", "flat row"),
            ("series", "trace row"),
            ("reason", "quarantine"),
        ):
            if key in d:
                return f"dict[{what}]"
        return "dict{" + ",".join(sorted(map(str, d))) + "}"

    def find(self, obj: Any, depth: int = 0, out: set[str] | None = None) -> set[str]:
        """Labels of the document's holders inside ``obj`` (containers looked into, 3 deep)."""
        out = set() if out is None else out
        if isinstance(obj, str):
            if obj == self.text:
                out.add("str")
            return out
        if isinstance(obj, bytes | bytearray):
            if self.raw in obj:
                out.add("bytes")
            return out
        r = self.rep(obj)
        if r is not None:
            out.add(r)
            return out
        if depth >= 3:
            return out
        if isinstance(obj, list | tuple):
            for x in obj[:64]:
                self.find(x, depth + 1, out)
        elif isinstance(obj, dict):
            for x in list(obj.values())[:64]:
                self.find(x, depth + 1, out)
        elif (getattr(type(obj), "__module__", "") or "").startswith("emocurate") and hasattr(
            obj, "__dict__"
        ):
            for x in list(vars(obj).values())[:64]:
                self.find(x, depth + 1, out)
        return out

    # -- the profiler --------------------------------------------------------------------
    @staticmethod
    def ours(frame: FrameType) -> bool:
        code = frame.f_code
        return code.co_filename.startswith(PKG) and not code.co_name.startswith("<")

    def mark(self, frame: FrameType, labels: set[str], why: str) -> None:
        key = id(frame)
        if key not in self.stops:
            self.stops[key] = {"frame": frame, "labels": set(), "why": why}
        self.stops[key]["labels"] |= labels
        for lab in sorted(labels):
            if lab not in ("str", "bytes") and lab not in self.reps:
                self.reps.append(lab)
        f = frame.f_back
        while f is not None:  # callers above the stop (same thread)
            if self.ours(f) and id(f) in self.first and id(f) not in self.stops:
                self.stops[id(f)] = {"frame": f, "labels": set(), "why": "caller"}
            f = f.f_back

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.done or event not in ("call", "return") or not self.ours(frame):
            return
        with self.lock:
            key = id(frame)
            if event == "call":
                if key in self.first and self.first[key][1] is frame:
                    return  # a generator resuming
                self.first[key] = (next(self.seq), frame)
                code = frame.f_code
                n = code.co_argcount + code.co_kwonlyargcount
                n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
                args = [frame.f_locals.get(v) for v in code.co_varnames[:n]]
                labels = self.find(args)
                if labels:
                    self.mark(frame, labels, "argument")
                return
            labels = self.find(arg)
            if labels:
                self.mark(frame, labels, "returns")
            if frame.f_code.co_name == "write_shard":
                self.done = True  # the row is written

    # -- the report ----------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        rows = []
        for key, stop in self.stops.items():
            frame = stop["frame"]
            code = frame.f_code
            mod = Path(code.co_filename).resolve().relative_to(Path(PKG).parent).with_suffix("")
            rows.append(
                {
                    "seq": self.first[key][0],
                    "module": ".".join(mod.parts),
                    "function": getattr(code, "co_qualname", code.co_name),
                    "why": stop["why"],
                    "holds": sorted(stop["labels"]),
                }
            )
        rows.sort(key=lambda r: r["seq"])
        mods = [r["module"] for r in rows]
        returns = sum(
            1 for i in range(1, len(mods)) if mods[i] != mods[i - 1] and mods[i] in mods[:i]
        )
        return {
            "document": {"doc_id": self.doc_id, "chars": len(self.text)},
            "stops": len(rows),
            "stops_holding_document": sum(1 for r in rows if r["why"] != "caller"),
            "modules": len(set(mods)),
            "module_list": list(dict.fromkeys(mods)),
            "returns_to_a_module_left": returns,
            "module_switches": sum(1 for i in range(1, len(mods)) if mods[i] != mods[i - 1]),
            "representations": len(self.reps),
            "representation_list": self.reps,
            "shape_changes": max(0, len(self.reps) - 1),
            # representations that copy the document's fields into a new shape (not wrappers
            # holding the reader's object, not the Analysis, which holds no document field)
            "wrappers": [r for r in self.reps if r in self.wrappers],
            "copies": [
                r for r in self.reps if r not in self.wrappers and not r.endswith(".Analysis")
            ],
            "walk": [
                f"{r['module']}:{r['function']} [{r['why']}{': ' + ', '.join(r['holds']) if r['holds'] else ''}]"
                for r in rows
            ],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=TEXT, help="the one document's text")
    ap.add_argument("--brief", action="store_true", help="counts only, no walk list")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from typer.testing import CliRunner

    from emocurate.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vectors = build_vectors(root)
        corpus = root / "walk.jsonl"
        corpus.write_text(json.dumps({"text": a.text}) + "\n")
        walk = Walk(a.text)
        args = ["score", str(corpus), "--vectors", str(vectors), "--out", str(root / "scores")]
        threading.setprofile(walk)
        sys.setprofile(walk)
        try:
            res = CliRunner().invoke(app, args, catch_exceptions=False)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]
        if res.exit_code != 0:
            raise SystemExit(f"score failed ({res.exit_code}): {res.output}")
        rep = walk.report()
    if a.brief:
        rep.pop("walk")
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
