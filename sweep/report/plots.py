"""The report's figures (matplotlib, Agg). Each reads the report's tables and the study's `Design`; none names a study's
fields: panels are the design's groups (a group holding only the baseline gets no panel of its own: the baseline is
drawn in every group it is compared with), bars are arms in rank order (ranked arms first, then by name), the
baseline is a dashed line and the real images' own score (the floor) a dotted one.

Honest marks: a 95% CI error bar only where an arm has two or more finished seeds; every finished seed's value as a
dot; every seed that did not finish (diverged, failed, stopped, interrupted) as a red x at the foot of its bar, so
a missing seed is seen, not silently absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from search_spaces import Design
from sweep.report.tables import group_title, shown_groups

MARKERS = "os^Dv<>p"  # with more arms than tab20 has colours, the marker tells them apart


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def styles(arms) -> dict[str, dict]:
    """A distinct colour per arm (sorted by label, so an arm looks the same in every figure): tab20's dark shades
    first (ten distinct hues), then its light ones; past 20 arms the marker changes too."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return {arm: {"color": cmap(order[i % 20]), "marker": MARKERS[(i // 20) % len(MARKERS)]}
            for i, arm in enumerate(sorted(set(arms)))}


def final_figure(summary: pd.DataFrame, finals: pd.DataFrame, metric: str, *, design: Design,
                 floors: dict | None = None, note: str = ""):
    """The figure of `plot_final` (returned for tests to inspect): one panel per shown group, a bar per compared arm
    (its mean over finished seeds), the seeds, the baseline and the floor (`floors`: group values -> the real images'
    own value, where there is one)."""
    plt = _pyplot()
    panels = shown_groups(summary, design)
    width = max(6.0, 0.7 * max(len(g) for _, g in panels) + 3)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.6 * len(panels)), squeeze=False)
    mean, ci = f"{metric}_mean", f"{metric}_ci95"
    style = styles(summary["arm"])
    for ax, (key, shown) in zip(axes[:, 0], panels):
        arms, base = shown[~shown["is_baseline"]], shown[shown["is_baseline"]]
        missed = False
        for x, (_, r) in enumerate(arms.iterrows()):
            if pd.notna(r[mean]):
                ax.bar(x, r[mean], color=style[r["arm"]]["color"], alpha=0.8,
                       yerr=r[ci] if pd.notna(r[ci]) else None, capsize=3)
            trials = finals[(finals["arm"] == r["arm"]) & (finals["context"] == r["context"])]
            done = trials[trials["outcome"] == "finished"]
            ax.plot([x] * len(done), done[metric], "o", color="k", ms=3, zorder=3)
            lost = trials[trials["outcome"] != "finished"]
            if len(lost):
                missed = True
                offsets = [x + 0.12 * (i - (len(lost) - 1) / 2) for i in range(len(lost))]
                ax.plot(offsets, [0.02] * len(lost), "x", color="tab:red", ms=7, mew=2, zorder=4,
                        transform=ax.get_xaxis_transform(), clip_on=False)
        for _, b in base.iterrows():
            if pd.notna(b[mean]):
                ax.axhline(b[mean], color="k", ls="--", lw=1, label=f"{design.baseline} ({b[mean]:.4g})")
                if pd.notna(b[ci]):
                    ax.axhspan(b[mean] - b[ci], b[mean] + b[ci], color="k", alpha=0.08, zorder=0)
        floor = (floors or {}).get(key)
        if floor is not None and pd.notna(floor):
            ax.axhline(floor, color="tab:green", ls=":", lw=1.5, label=f"real images ({floor:.4g})")
        if missed:
            ax.plot([], [], "x", color="tab:red", mew=2, label="seed that did not finish")
        ax.set_xticks(range(len(arms)), list(arms["arm"]), rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(metric)
        ax.set_title(group_title(design, key), loc="left", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"final {metric} per arm (rank order): mean over finished seeds, 95% CI where n >= 2, dots = seeds",
                 fontsize=10)
    fig.tight_layout()
    if note:
        fig.text(0.01, -0.01, note, fontsize=7, va="top", wrap=True)
    return fig


def plot_final(summary: pd.DataFrame, finals: pd.DataFrame, metric: str, path: Path, *, design: Design,
               floors: dict | None = None, note: str = "") -> Path:
    """`final_figure`, saved to `path`."""
    fig = final_figure(summary, finals, metric, design=design, floors=floors, note=note)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_curves(history: pd.DataFrame, summary: pd.DataFrame, metric: str, path: Path, *, design: Design,
                x: str = "step") -> Path:
    """`metric` against `x` (step, or train_seconds), one line per arm of each shown group (each evaluation of each
    seed a point, the line through the mean over seeds at each step), the baseline dashed. `history` carries each
    report's `context` (what `summary` rows are keyed by)."""
    plt = _pyplot()
    data = history[history[metric].notna()] if metric in history else history.iloc[0:0]
    panels = shown_groups(summary, design)
    style = styles(summary["arm"])
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 3.4 * len(panels)), squeeze=False)
    for ax, (key, shown) in zip(axes[:, 0], panels):
        for _, r in shown.iterrows():
            a = data[(data["arm"] == r["arm"]) & (data["context"] == r["context"])]
            if a.empty:
                continue
            line = dict(ls="--", color="k", marker="o") if r["is_baseline"] else style[r["arm"]]
            ax.plot(a[x], a[metric], ".", alpha=0.35, ms=4, color=line["color"])
            curve = a.groupby("step", as_index=False)[list(dict.fromkeys([x, metric]))].mean().sort_values(x)
            ax.plot(curve[x], curve[metric], ms=3, label=r["arm"], **line)
        ax.set_xlabel("training seconds" if x == "train_seconds" else x)
        ax.set_ylabel(metric)
        ax.set_title(group_title(design, key), loc="left", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
