"""The sample mosaic (`samples_mosaic.png`): a first row of real reference images, then one row per (group, arm) in the
report's order (groups in order; in each, the baseline first, then the arms by rank), each row `K` samples from the
final evaluation of the arm's lowest seed that has one. Images are pasted with PIL at their native resolution (no
resampling: a 128x128 sample shows as 128x128 pixels); one smaller than `MIN_TILE` is enlarged by a whole factor,
each pixel a block (a 32x32 sample shows as 64x64, no value invented). Rows are labelled on the left.

The samples are the trial's scored ones (`TrialRecord.final_samples`, an image table of the fixed evaluation noise),
so the mosaic shows exactly what the metrics judged. It names no study's fields: rows follow the summary and the
study's `Design`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from gan.imagetable import read_image_table
from search_spaces import Design
from sweep.records import SweepFolder, TrialRecord
from sweep.report.tables import group_title, shown_groups

K = 8  # samples per row
GAP = 2  # pixels between tiles and rows
FONT_SIZE = 11  # label text (PIL's bundled font)
BACKGROUND = (255, 255, 255)
MIN_TILE = 64  # a sample smaller than this is enlarged by a whole factor (see `zoomed`)


@dataclass(frozen=True)
class Row:
    """One labelled row of the mosaic."""

    label: tuple[str, ...]  # its label, one string per text line
    images: np.ndarray | None  # uint8 (n, 3, H, W) to paste at native size, or None when there is nothing to show
    header: bool = False  # a group's title line: text only, across the whole width


def _samples(path: str, k: int) -> np.ndarray:
    """The first `k` images of an image table (the first of the fixed evaluation noise), decoding only those."""
    n = pq.ParquetFile(path).metadata.num_rows
    return read_image_table(path, rows=list(range(min(k, n)))).images.numpy()


def arm_rows(records: list[TrialRecord], summary, design: Design, folder: SweepFolder, k: int = K) -> list[Row]:
    """One row per shown (group, arm) of the summary: `k` final samples of the arm's lowest seed that has them, or
    a label saying why there are none (no finished seed left final samples)."""
    rows = []
    for key, shown in shown_groups(summary, design):
        rows.append(Row((group_title(design, key) or "all arms",), None, header=True))
        for _, r in shown.iterrows():
            trials = sorted((t for t in records if t.arm == r["arm"]
                             and json.dumps(design.context(t.config)) == r["context"]), key=lambda t: t.seed)
            with_samples = [t for t in trials if t.final_samples]
            place = "baseline" if r["is_baseline"] else ("unranked" if pd.isna(r["rank"]) else f"rank {int(r['rank'])}")
            if not with_samples:
                rows.append(Row((f"{r['arm']} ({place})", "no final samples:",
                                 f"{r['finished']}/{r['n_trials']} seeds finished"), None))
                continue
            t = with_samples[0]
            rows.append(Row((f"{r['arm']} ({place})", f"seed {t.seed}, final samples"),
                            _samples(folder.local(t.final_samples), k)))
    return rows


def reference_row(table: str | None, held_out: bool, k: int = K) -> Row:
    """The real images the samples are scored against (the held-out reference, or the training images when the
    sweep had no held-out set)."""
    if table is None:
        return Row(("real images", "none recorded for this sweep"), None)
    what = "held-out reference" if held_out else "training images (no held-out set)"
    return Row(("real images", what), _samples(table, k))


def zoomed(image: np.ndarray) -> np.ndarray:
    """A (3, H, W) image enlarged by the smallest whole factor that brings its longer side to `MIN_TILE` or more (1
    from `MIN_TILE` up): every pixel becomes a block of equal pixels, so the tile shows exactly the sample's values."""
    factor = -(-MIN_TILE // max(image.shape[1:]))
    return image if factor <= 1 else image.repeat(factor, axis=1).repeat(factor, axis=2)


def compose(rows: list[Row], path: Path) -> Path:
    """Paste every row's images (`zoomed`) into one PNG, labels on the left (a header row's across the top of its
    group); tiles of different sizes are centred in cells of the largest size."""
    rows = [r if r.images is None else Row(r.label, np.stack([zoomed(im) for im in r.images]), r.header)
            for r in rows]
    font = ImageFont.load_default(size=FONT_SIZE)
    line_h = FONT_SIZE + 3
    sizes = [im.shape[1:] for r in rows if r.images is not None for im in r.images]
    cell_h = max([h for h, _ in sizes] + [line_h * max(len(r.label) for r in rows if not r.header) + GAP])
    cell_w = max([w for _, w in sizes] + [1])
    per_row = max([len(r.images) for r in rows if r.images is not None] + [1])
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(int(probe.textlength(line, font=font)) for r in rows if not r.header for line in r.label) + 3 * GAP
    heights = [line_h + 2 * GAP if r.header else cell_h + GAP for r in rows]
    width = max([label_w + per_row * (cell_w + GAP) + GAP]
                + [int(probe.textlength(r.label[0], font=font)) + 2 * GAP for r in rows if r.header])
    canvas = Image.new("RGB", (width, sum(heights) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    top = GAP
    for row, height in zip(rows, heights):
        if row.header:
            draw.line([(GAP, top + 1), (width - GAP, top + 1)], fill=(160, 160, 160))
            draw.text((GAP, top + GAP + 1), row.label[0], fill=(0, 0, 0), font=font)
            top += height
            continue
        for j, line in enumerate(row.label):
            draw.text((GAP, top + j * line_h), line, fill=(0, 0, 0), font=font)
        for j, im in enumerate(row.images if row.images is not None else ()):
            h, w = im.shape[1:]
            x = label_w + j * (cell_w + GAP) + (cell_w - w) // 2
            canvas.paste(Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0))), (x, top + (cell_h - h) // 2))
        top += height
    canvas.save(path)
    return path
