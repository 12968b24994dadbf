"""The figures of docs/metrics.md: hand-made distress and valence trajectories, the flags
``emocurate.corpus.regulation.analyse`` raises on them, drawn as small SVG line charts.

Each panel plots the smoothed series with the thresholds dashed and every flag span shaded (one
colour per kind, labelled). The SVGs are generated from the code they document, so they stay
true when it changes::

    python bench/flag_figures.py        # writes docs/figures/flag_*.svg
"""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emocurate.configs import MetricConfig  # noqa: E402
from emocurate.corpus.regulation import Axes, analyse  # noqa: E402

NAMES = ["happy", "sad", "afraid", "angry", "calm", "desperate"]
AXES = Axes.for_names(NAMES, va={})
COLORS = {
    "distress_episode": "#d62728",
    "unresolved_end": "#9467bd",
    "unrecovered_distress": "#8c564b",
    "escalation": "#ff7f0e",
    "high_volatility": "#1f77b4",
}
W, H, PAD = 300, 150, 24


def traj(distress: np.ndarray, valence: np.ndarray | None = None) -> np.ndarray:
    z = np.zeros((len(distress), len(NAMES)))
    for n in ("afraid", "angry", "desperate"):
        z[:, NAMES.index(n)] = distress
    if valence is not None:
        z[:, NAMES.index("happy")] += valence
        z[:, NAMES.index("sad")] -= valence
    return z + np.random.default_rng(0).normal(0, 0.05, z.shape)


def panel(title: str, z: np.ndarray, series: str, cfg: MetricConfig, x0: int) -> str:
    an = analyse(z, AXES, cfg)
    y = an.distress if series == "distress" else an.valence
    assert y is not None
    n = len(y)
    lo, hi = min(float(y.min()), -0.5), max(float(y.max()), cfg.threshold) + 0.5

    def px(t: float) -> float:
        return x0 + PAD + (W - 2 * PAD) * t / max(1, n - 1)

    def py(v: float) -> float:
        return H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo)

    out = [
        f'<text x="{x0 + W / 2}" y="14" text-anchor="middle" font-size="11">{escape(title)}</text>'
    ]
    kinds = sorted({f.kind for f in an.flags}, key=list(COLORS).index)
    for row, kind in enumerate(kinds):
        for f in an.flags:
            if f.kind == kind:
                yb = H - PAD + 3 + 5 * row
                out.append(
                    f'<rect x="{px(f.start):.1f}" y="{yb}" width="{px(f.end) - px(f.start):.1f}" '
                    f'height="4" fill="{COLORS[kind]}"><title>{kind}</title></rect>'
                )
    if series == "distress":
        for v in (cfg.threshold, cfg.recover_level):
            out.append(
                f'<line x1="{px(0)}" x2="{px(n - 1)}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
                'stroke="#888" stroke-dasharray="3,3"/>'
            )
    pts = " ".join(f"{px(i):.1f},{py(float(v)):.1f}" for i, v in enumerate(y))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#222" stroke-width="1.2"/>')
    label = ", ".join(kinds) or "no flag"
    out.append(
        f'<text x="{x0 + W / 2}" y="{H + 18}" text-anchor="middle" font-size="10">'
        f"{escape(series)}: {escape(label)}</text>"
    )
    return "\n".join(out)


def figure(path: Path, panels: list[tuple[str, np.ndarray, str]], cfg: MetricConfig) -> None:
    body = [panel(t, z, s, cfg, k * W) for k, (t, z, s) in enumerate(panels)]
    legend = " ".join(f'<tspan fill="{c}">&#9632; {k}</tspan>' for k, c in COLORS.items())
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W * len(panels)}" height="{H + 40}" '
        'font-family="sans-serif">\n' + "\n".join(body)
        + f'\n<text x="4" y="{H + 34}" font-size="9">{legend}</text>\n</svg>\n'
    )  # fmt: skip
    path.write_text(svg)


def main() -> None:
    out = ROOT / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    cfg = MetricConfig()
    run = np.zeros(260)
    run[50:150] = 2.5
    for k in (14, 44, 74):
        run[50 + k : 50 + k + 16] = 0.75  # dips under theta, never back to rho
    end = np.zeros(200)
    end[130:] = 2.5
    figure(
        out / "flag_episodes.svg",
        [("one run with dips: one episode, recovered", traj(run), "distress"),
         ("a run that ends the document", traj(end), "distress")],
        cfg,
    )  # fmt: skip

    def peaks(ps: list[float]) -> np.ndarray:
        d = np.zeros(40)
        for p in ps:
            d = np.concatenate([d, np.full(20, p), np.zeros(30)])
        return d

    figure(
        out / "flag_escalation.svg",
        [("rising peaks", traj(peaks([1.5, 2.5, 3.5])), "distress"),
         ("equal peaks", traj(peaks([2.5, 2.5, 2.5])), "distress"),
         ("one final run", traj(end), "distress")],
        cfg,
    )  # fmt: skip
    t = np.arange(240)
    swing = np.where((t >= 60) & (t < 180), 8.0 * np.sign(np.sin(t / 3.2)), 0.0)
    span = np.where((t >= 60) & (t < 180), -8.0, 0.0)
    figure(
        out / "flag_volatility.svg",
        [("valence reversing", traj(np.zeros(240), swing), "valence"),
         ("one long span", traj(np.zeros(240), span), "valence")],
        cfg,
    )  # fmt: skip
    print("wrote", ", ".join(sorted(p.name for p in out.glob("flag_*.svg"))))


if __name__ == "__main__":
    main()
