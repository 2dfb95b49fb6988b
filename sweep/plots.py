"""The report's figures (matplotlib, Agg). Each takes the report's tables and the study's design; none names a
study's fields: panels are the design's groups, bars are arms, the baseline is a dashed line."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(group_by, key) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(group_by, key)) if group_by else ""


def _groups(frame: pd.DataFrame, group_by) -> list[tuple[tuple, pd.DataFrame]]:
    if not group_by or frame.empty:
        return [((), frame)]
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in frame.groupby(list(group_by), sort=True, dropna=False)]


def plot_final(summary: pd.DataFrame, finals: pd.DataFrame, metric: str, path: Path, *, group_by, baseline: str,
               note: str = "") -> Path:
    """Bars of each arm's mean final `metric` over its finished seeds, one panel per group; a 95% CI error bar only
    where an arm has two or more seeds; every seed's own value as a dot over its bar; the baseline arm of the
    group's context as a dashed line (with its interval as a band)."""
    plt = _pyplot()
    panels = _groups(summary, group_by)
    width = max(6.0, 0.7 * max(len(g) for _, g in panels) + 3)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.6 * len(panels)), squeeze=False)
    mean, ci = f"{metric}_mean", f"{metric}_ci95"
    colours = {arm: f"C{i % 10}" for i, arm in enumerate(sorted(summary["arm"].unique()))}
    for ax, (key, g) in zip(axes[:, 0], panels):
        arms = g[~g["is_baseline"]].sort_values("arm")
        for x, (_, r) in enumerate(arms.iterrows()):
            if pd.notna(r[mean]):
                ax.bar(x, r[mean], color=colours[r["arm"]], alpha=0.75,
                       yerr=r[ci] if pd.notna(r[ci]) else None, capsize=3)
            else:  # no finished seed: say why instead of drawing nothing
                ax.text(x, 0.02, f"{r['finished']}/{r['n_trials']} finished", transform=ax.get_xaxis_transform(),
                        rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
            seeds = finals[(finals["arm"] == r["arm"]) & (finals["context"] == r["context"])
                           & (finals["outcome"] == "finished")]
            ax.plot([x] * len(seeds), seeds[metric], "o", color="k", ms=3, zorder=3)
        base = summary[summary["is_baseline"] & summary["context"].isin(arms["context"])]
        for _, b in base.iterrows():
            if pd.notna(b[mean]):
                ax.axhline(b[mean], color="k", ls="--", lw=1, label=f"{baseline} ({b[mean]:.4g})")
                if pd.notna(b[ci]):
                    ax.axhspan(b[mean] - b[ci], b[mean] + b[ci], color="k", alpha=0.08, zorder=0)
        ax.set_xticks(range(len(arms)), list(arms["arm"]), rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(metric)
        ax.set_title(_title(group_by, key), loc="left", fontsize=9)
        if len(base):
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"final {metric} per arm: mean over finished seeds, 95% CI where n >= 2, dots = seeds", fontsize=10)
    fig.tight_layout()
    if note:
        fig.text(0.01, -0.01, note, fontsize=7, va="top", wrap=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(history: pd.DataFrame, metric: str, path: Path, *, x: str = "step", group_by, baseline: str) -> Path:
    """`metric` against `x` (step, or train_seconds), one line per arm (each evaluation of each seed a point, the
    line through the mean over seeds at each step), one panel per group."""
    plt = _pyplot()
    data = history[history[metric].notna()] if metric in history else history.iloc[0:0]
    panels = _groups(data, group_by)
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 3.4 * len(panels)), squeeze=False)
    for ax, (key, g) in zip(axes[:, 0], panels):
        for i, (arm, a) in enumerate(g.groupby("arm", sort=True)):
            style = dict(ls="--", color="k") if arm == baseline else dict(color=f"C{i % 10}")
            ax.plot(a[x], a[metric], ".", alpha=0.35, ms=4, color=style["color"])
            curve = a.groupby("step", as_index=False)[list(dict.fromkeys([x, metric]))].mean().sort_values(x)
            ax.plot(curve[x], curve[metric], marker="o", ms=3, label=arm, **style)
        ax.set_xlabel("training seconds" if x == "train_seconds" else x)
        ax.set_ylabel(metric)
        ax.set_title(_title(group_by, key), loc="left", fontsize=9)
        if len(g):
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_mosaic(tiles: list[tuple[str, str]], path: Path) -> Path:
    """One labelled tile per (label, image path), in a near-square grid."""
    plt = _pyplot()
    from PIL import Image

    n = max(1, len(tiles))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, image) in zip(axes.flat, tiles):
        with Image.open(image) as im:
            ax.imshow(im.convert("RGB"))
        ax.set_title(label, fontsize=8)
    if not tiles:
        axes[0, 0].text(0.5, 0.5, "no sample grids found", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
