"""The report's figures on the hand-written sweep (tests/_report_sweep.py): what the final-score plot draws (panels,
error bars, lost seeds, the floor), the colours, which plots are skipped, and the sample mosaic at native
resolution in the report's order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gan.imagetable import read_image_table
from search_spaces.da import DA_DESIGN
from sweep.report import mosaic, plots
from sweep.records import SweepFolder, read_sweep, reference_table
from sweep.report.write import write_report
from sweep.report.tables import finals_table
from tests import _report_sweep as hs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return hs.write_sweep(tmp_path_factory.mktemp("figures") / "sweep")


@pytest.fixture(scope="module")
def rep(sweep):
    return write_report(sweep, DA_DESIGN, hs.KID, "min")


def test_final_plot_draws_what_the_rules_say(rep, sweep):
    finals = finals_table(read_sweep(sweep), DA_DESIGN)
    floor = float(np.mean([hs.floor(s)[hs.KID] for s in hs.SEEDS]))
    fig = plots.final_figure(rep.summary, finals, hs.KID, design=DA_DESIGN, floors={("lfw-subset", 100): floor})
    (ax,) = fig.axes  # the baseline's own group (n_aug = 0) gets no empty panel
    # nothing holds on 3 seeds of identical differences, so nothing ranks: the arms in name order
    assert [t.get_text() for t in ax.get_xticklabels()] == ["contrast@100", "hflip@100", "vflip@100"]
    bars = [c for c in ax.containers if hasattr(c, "errorbar")]
    assert [c.errorbar is not None for c in bars] == [True, True, False]  # vflip@100 has one seed: no error bar
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines[f"real images ({floor:.4g})"].get_ydata()) == [floor, floor]
    assert list(lines[f"none ({np.mean([hs.kid('none', s) for s in hs.SEEDS]):.4g})"].get_ydata())[0] == \
        pytest.approx(0.51)
    lost = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    assert len(lost) == 1 and list(lost[0].get_xdata()) == [0.0]  # contrast@100's diverged seed, at its bar
    seeds = [line for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata())]
    assert [len(line.get_xdata()) for line in seeds] == [2, 3, 1]  # every finished seed a dot


def test_colours_are_distinct_for_twenty_arms():
    styles = plots.styles([f"arm{i:02d}" for i in range(21)])
    colours = [styles[f"arm{i:02d}"]["color"] for i in range(20)]
    assert len(set(colours)) == 20
    assert len({styles[f"arm{i:02d}"]["color"] for i in range(10)}) == 10
    assert styles["arm20"]["marker"] != styles["arm00"]["marker"]


def test_one_evaluation_per_trial_draws_no_curves(rep, tmp_path):
    names = {f.name for f in rep.files}
    assert not any(n.startswith(("curves_", "vs_seconds_")) for n in names)  # one point per trial: no curve
    assert {"final_kid_mean_effnet.png", "samples_mosaic.png"} <= names
    sweep = hs.write_sweep(tmp_path / "again")
    (sweep / "report").mkdir()
    (sweep / "report" / f"vs_seconds_{hs.KID}.png").write_bytes(b"an earlier report's figure")
    write_report(f"file://{sweep}", DA_DESIGN, hs.KID, "min")  # the URI path (pyarrow), as on s3://
    assert sorted(p.name for p in (sweep / "report").iterdir()) == sorted(names)


def _find(canvas: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
    """Every (y, x) where `tile` (H, W, 3) sits in `canvas` exactly."""
    h, w = tile.shape[:2]
    ys, xs = np.nonzero((canvas[: 1 - h or None, : 1 - w or None] == tile[0, 0]).all(axis=2))
    return [(y, x) for y, x in zip(ys, xs) if np.array_equal(canvas[y:y + h, x:x + w], tile)]


def test_mosaic_rows_follow_the_report_without_resampling(rep, sweep, tmp_path):
    records = read_sweep(sweep)
    folder = SweepFolder(sweep)
    rows = mosaic.arm_rows(records, rep.summary, DA_DESIGN, folder)
    # nothing holds on these 3 seeds of identical differences, so nothing ranks: arms in name order
    assert [r.label[0] for r in rows] == ["dataset=lfw-subset, n_aug=100", "none (baseline)",
                                          "contrast@100 (unranked)", "hflip@100 (unranked)", "vflip@100 (unranked)"]
    index = {(r.arm, r.seed): int(r.trial_id[:5]) for r in records}  # trial t of hs.TRIALS is 0000t_abcdef12
    for row, arm in zip(rows[1:], ("none", "contrast@100", "hflip@100", "vflip@100")):
        trial = index[(arm, 0)]
        want = np.stack([np.full((3, hs.SIZE, hs.SIZE), hs.sample_value(trial, i), np.uint8) for i in range(mosaic.K)])
        assert row.label[1] == "seed 0, final samples" and np.array_equal(row.images, want)
    real = mosaic.reference_row(reference_table(sweep), True)
    assert real.label == ("real images", "held-out reference")
    assert np.array_equal(real.images, read_image_table(sweep / "inputs" / "reference-000.parquet").images[:8].numpy())
    # composed without resampling: every 32x32 tile is in the PNG pixel for pixel as 2x2 blocks (64x64), rows top to
    # bottom in the report's order
    assert np.array_equal(mosaic.zoomed(rows[1].images[0]), rows[1].images[0].repeat(2, 1).repeat(2, 2))
    big = np.zeros((3, 128, 96), np.uint8)
    assert mosaic.zoomed(big) is big  # 64 and up: native size
    png = np.asarray(Image.open(mosaic.compose([real, *rows], tmp_path / "m.png")).convert("RGB"))
    tops = []
    for row in [real, *rows[1:]]:
        spots = [_find(png, mosaic.zoomed(im).transpose(1, 2, 0)) for im in row.images]
        assert all(len(s) >= 1 for s in spots)
        tops.append(spots[0][0][0])
        assert len({s[0][0] for s in spots}) == 1  # one row
    assert tops == sorted(tops) and len(set(tops)) == len(tops)


def test_mosaic_takes_the_lowest_seed_with_final_samples(rep, sweep, tmp_path):
    import shutil

    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    (lost,) = copy.glob("none-s0-*")
    shutil.rmtree(lost / "checkpoint_000000")  # none's seed 0 left no final samples: seed 1 stands for it
    rows = mosaic.arm_rows(read_sweep(copy), rep.summary, DA_DESIGN, SweepFolder(copy))
    assert rows[1].label == ("none (baseline)", "seed 1, final samples")
    shutil.rmtree(next(copy.glob("vflip_100-s0-*")) / "checkpoint_000000")
    rows = mosaic.arm_rows(read_sweep(copy), rep.summary, DA_DESIGN, SweepFolder(copy))
    assert rows[-1].images is None and rows[-1].label[1:] == ("no final samples:", "1/1 seeds finished")


def test_summary_rows_of_a_group(rep):
    """The mosaic and the plots share the order of the tables: the baseline, then the arms by rank (ranked first),
    then by name."""
    from sweep.report.tables import shown_groups

    ((key, shown),) = shown_groups(rep.summary, DA_DESIGN)
    assert key == ("lfw-subset", 100) and list(shown["arm"]) == ["none", "contrast@100", "hflip@100", "vflip@100"]
    assert shown["rank"].isna().all()
    ranked = rep.summary.assign(rank=rep.summary["rank"].mask(rep.summary["arm"] == "vflip@100", 1))
    assert list(shown_groups(ranked, DA_DESIGN)[0][1]["arm"]) == ["none", "vflip@100", "contrast@100", "hflip@100"]
