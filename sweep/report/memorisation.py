"""The report's memorisation section: per arm, the share of its final samples closer to a training image than 95%
of held-out real images are (`gan.metrics.memorisation`), mean and 95% t interval over finished seeds, beside the
held-out images' own share (the floor, about 0.05). Shown only when the trials report the key."""

from __future__ import annotations

import pandas as pd

from gan.metrics.memorisation import QUANTILE
from gan.metrics.schema import metric_key
from sweep.report import stats, tables

INTRO = ("Share of an arm's final samples whose nearest training image (in {ext} features) is closer than the "
         "{pct:g}th percentile of the held-out real images' nearest-training-image distances: about {q:g} for a "
         "generator that draws like fresh real images, 1 for one that returns its training images. Mean ± 95% t "
         "interval over finished seeds. FID and KID reward memorisation; read them beside this. The floor row: one "
         "half of the held-out images scored against the other half's threshold (what no memorisation looks like "
         "at this count).")


def memorisation_section(finals: pd.DataFrame, design, ext: str, inputs: list[dict]) -> list[str]:
    """Markdown lines of the section ([] when no trial reported `memorisation_<ext>`)."""
    key = metric_key("memorisation", ext)
    if key not in finals or not finals[key].notna().any():
        return []
    done = finals[finals["outcome"] == "finished"]
    rows = []
    by = [f for f in design.group_by if f in done]
    for values, g in done.groupby([*by, "arm"], sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        mean, half, n = stats.mean_ci(g[key])
        rows.append([tables.group_title(design, values[:-1]) or "–", values[-1], _fmt(mean, half), n])
    floor, half = tables.floor_value(inputs, key)
    if floor == floor:  # not NaN: some input had a held-out reference
        rows.append(["–", "held-out images (floor)", _fmt(floor, half), sum(key in e.get("floor", {}) for e in inputs)])
    return ["## Memorisation", "", INTRO.format(ext=ext, pct=100 * QUANTILE, q=QUANTILE), "",
            *_table(["group", "arm", f"`{key}`", "seeds"], rows), ""]


def _fmt(mean: float, half: float) -> str:
    return f"{mean:.3f}" + (f" ± {half:.3f}" if half == half else "")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]
