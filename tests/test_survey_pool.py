"""The survey's pool (which images it may show, behind which ids) and its design (which methods each pair compares).

Also home of the fake sweep the other survey tests import: trial records as SimpleNamespace objects, each method's
samples one flat colour (so a test can tell from the pixels which method an image came from), the row number written
into the first pixel (so every image's bytes differ). This sweep's design has no grouping fields (`FLAT`): one
comparison group, `()`; the grouped studies' fakes are in tests/test_survey_groups.py.
"""

import collections
import io
import itertools
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from gan.imagetable import ImageSet, image_png, write_image_table
from search_spaces import Design
from sweep.survey import REAL, pool_from_records
from sweep.survey.design import real_slots, schedule

COLOURS = {"A": (200, 30, 30), "B": (30, 30, 200), "C": (30, 160, 30), REAL: (220, 200, 40)}
FLAT = Design(arm_fields=("method",), group_by=(), baseline="A")  # every arm compared with every other


def write_samples(path, n: int, rgb, size: int = 8):
    """An image table of n flat `rgb` images, image i with the value i in its top-left pixel."""
    images = torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).repeat(n, 1, size, size)
    images[:, :, 0, 0] = torch.arange(n, dtype=torch.uint8).view(n, 1)
    write_image_table(path, ImageSet.of(images))
    return str(path)


def colour_of(png: bytes) -> str:
    """Which COLOURS entry a served PNG shows (read from a pixel away from the marked corner)."""
    rgb = tuple(int(c) for c in np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[-1, -1])
    return next(label for label, c in COLOURS.items() if c == rgb)


def trial(arm, seed, outcome="finished", samples=None, **config):
    """A trial record; its config is `config` and the seed, or {method: arm, seed} without `config`."""
    return SimpleNamespace(arm=arm, seed=seed, outcome=outcome, final_samples=samples,
                           config={"seed": seed, **(config or {"method": arm})})


def fake_sweep(root, methods=("A", "B"), per_trial=4):
    """Records of a sweep: two finished seeds per method in `methods`, plus a diverged and a failed trial of 'C'
    and a finished trial that saved no samples; returns (records, real table path)."""
    records = []
    for m in methods:
        for seed in (1, 0):
            records.append(trial(m, seed, samples=write_samples(root / f"{m}-{seed}.parquet", per_trial, COLOURS[m])))
    records += [trial("C", 0, "diverged", write_samples(root / "C-0.parquet", per_trial, COLOURS["C"])),
                trial("C", 1, "failed"), trial(methods[0], 2, "finished", None)]
    return records, write_samples(root / "real.parquet", per_trial, COLOURS[REAL])


def test_pool_holds_finished_trials_only(tmp_path):
    records, _ = fake_sweep(tmp_path)
    pool = pool_from_records(records, FLAT)
    assert pool.methods == ("A", "B") and not pool.has_real
    assert len(pool) == 4 * 4  # 2 methods x 2 finished seeds x 4 samples; nothing of C
    tables = {pool.ref(i).table for i in range(len(pool))}
    assert tables == {str((tmp_path / f"{m}-{s}.parquet").resolve()) for m in "AB" for s in (0, 1)}


def test_ids_map_to_the_stored_png_and_nothing_else(tmp_path):
    records, real = fake_sweep(tmp_path)
    pool = pool_from_records(records, FLAT, real_table=real)
    assert pool.has_real and len(pool) == 16 + 4
    for i in range(len(pool)):
        ref = pool.ref(i)
        assert pool.png(i) == image_png(ref.table, ref.row)
        assert pool.id_of(ref) == i
    assert pool.ref(len(pool)) is None and pool.ref(-1) is None
    with pytest.raises(KeyError):
        pool.png(len(pool))


def test_ids_are_stable_and_do_not_reveal_the_method(tmp_path):
    records, _ = fake_sweep(tmp_path)
    first, second = pool_from_records(records, FLAT), pool_from_records(list(reversed(records)), FLAT)
    assert all(first.ref(i) == second.ref(i) for i in range(len(first)))
    order = [colour_of(first.png(i)) for i in range(len(first))]
    assert order != sorted(order) and order != sorted(order, reverse=True)  # ids are not grouped by method


def test_draw_weighs_trials_equally(tmp_path):
    records = [trial("A", 0, samples=write_samples(tmp_path / "a0.parquet", 1, COLOURS["A"])),
               trial("A", 1, samples=write_samples(tmp_path / "a1.parquet", 9, COLOURS["A"])),
               trial("B", 0, samples=write_samples(tmp_path / "b0.parquet", 2, COLOURS["B"]))]
    pool = pool_from_records(records, FLAT)
    rng = random.Random(0)
    tables = collections.Counter(pool.ref(pool.draw((), "A", rng)).table.endswith("a0.parquet") for _ in range(2000))
    assert 900 < tables[True] < 1100  # the seed with one sample is drawn half the time, not a tenth


def test_methods_restrict_the_pool(tmp_path):
    records, _ = fake_sweep(tmp_path, methods=("A", "B", "C"))
    pool = pool_from_records(records, FLAT, methods=["C", "A"])
    assert pool.methods == ("A", "C")
    assert {colour_of(pool.png(i)) for i in range(len(pool))} == {"A", "C"}


@pytest.mark.parametrize("methods, message", [
    (["A", "Z"], "method 'Z' is not an arm of this sweep; methods with finished trials: A, B"),
    (["A", "C"], "method 'C' has no finished trial with samples; methods with finished trials: A, B"),
    (["A"], "the survey compares two or more methods, got 1; methods with finished trials: A, B"),
    (["A", "A"], "the survey compares two or more methods, got 1"),
])
def test_bad_methods_say_what_is_allowed(tmp_path, methods, message):
    records, _ = fake_sweep(tmp_path)
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        pool_from_records(records, FLAT, methods=methods)


def test_no_finished_trial_is_an_error(tmp_path):
    records = [trial("A", 0, "diverged", write_samples(tmp_path / "a.parquet", 2, COLOURS["A"])), trial("B", 0, "failed")]
    with pytest.raises(ValueError, match=r"no finished trial with final samples in this sweep \(1 diverged, 1 failed\)"):
        pool_from_records(records, FLAT)


def test_one_finished_arm_is_too_few(tmp_path):
    records = [trial("A", 0, samples=write_samples(tmp_path / "a.parquet", 2, COLOURS["A"])), trial("B", 0, "failed")]
    with pytest.raises(ValueError, match="two or more methods, got 1; methods with finished trials: A$"):
        pool_from_records(records, FLAT)


def test_missing_samples_table_and_arm_called_real(tmp_path):
    records, _ = fake_sweep(tmp_path)
    records[0].final_samples = str(tmp_path / "gone.parquet")
    with pytest.raises(FileNotFoundError, match="gone.parquet does not exist"):
        pool_from_records(records, FLAT)
    records, _ = fake_sweep(tmp_path)
    records[0].arm = REAL
    with pytest.raises(ValueError, match="an arm is called 'real'"):
        pool_from_records(records, FLAT)


def test_schedule_is_balanced_shuffled_and_fixed_per_participant():
    methods = ("A", "B", "C")
    comparisons = {(): methods}
    slots = schedule(comparisons, 12, 3, "p1")
    assert slots == schedule(comparisons, 12, 3, "p1")  # a restarted server continues the same schedule
    assert slots != schedule(comparisons, 12, 3, "p2")
    head_to_head = collections.Counter(s for s in slots if REAL not in s)
    assert head_to_head == {((), *pair): 3 for pair in itertools.combinations(methods, 2)}
    assert collections.Counter(s for s in slots if REAL in s) == {((), m, REAL): 1 for m in methods}
    assert slots[:9] != [s for s in slots if REAL not in s]  # real pairs are spread, not appended


def test_real_slots():
    assert real_slots(40, 0.25) == 10
    assert real_slots(1, 0.9) == 0  # never only real pairs
    assert real_slots(10, 0.0) == 0
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        real_slots(10, 1.0)
