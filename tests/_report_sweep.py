"""A sweep folder written by hand in gansweep's on-disk format (what the in-process runner leaves: params.json,
result.json, checkpoint folders with the final samples, inputs.json with floors and reference tables), whose every
number is a closed formula, so the report's tests can recompute each figure independently.

Study-1 design (groups: dataset and DA count; baseline `none`); one dataset, 3 seeds, one evaluation per trial:

    none          seeds 0, 1, 2 finished   KID 0.50 + 0.01 s   vflip share (5 + s)/10
    hflip@100     seeds 0, 1, 2 finished   KID none - 0.10     vflip share (4 + s)/10   (the same Δ every seed: p = 0)
    contrast@100  seeds 0, 1 finished,     KID none - 0.20     survivors better than hflip, but a seed was lost
                  seed 2 diverged
    vflip@100     seed 0 finished          KID 0.10            one seed: cannot rank

The leakage probe sees vflip (TPR 0.9 + 0.02 s, FPR 0.1) and is blind to hflip (TPR 0.5, FPR 0.5 - 0.1 s): trials
report no hflip share, only its measurable flag 0. Every arm's expected vflip share is m TPR + (1 - m) FPR with
m = 0.5 for vflip@100 and 0 otherwise. The real images (inputs.json floors, one per seed): KID 0.01 (s + 1),
IS 2 + 0.1 s, vflip share s/10.
Final samples: 10 images of 32x32 per finished trial, each a flat colour `sample_value(trial_index, i)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gan.imagetable import ImageSet, write_image_table
from gan.metrics.schema import leakage_expected_key, leakage_keys, leakage_measurable_key
from trainables.files import FINAL_SAMPLES_FILE

EXT = "effnet"
KID, FID, IS = f"kid_mean_{EXT}", f"fid_{EXT}", f"is_mean_{EXT}"
VFLIP, HFLIP = leakage_keys(EXT, "vflip")[0], leakage_keys(EXT, "hflip")[0]
VFLIP_EXPECTED, VFLIP_SEEN, HFLIP_SEEN = (leakage_expected_key("vflip"), leakage_measurable_key("vflip"),
                                          leakage_measurable_key("hflip"))
N_SAMPLES, SIZE, STEPS = 10, 32, 2
SEEDS = (0, 1, 2)
TRIALS = [("none", s, "finished") for s in SEEDS] + [("hflip", s, "finished") for s in SEEDS] + [
    ("contrast", 0, "finished"), ("contrast", 1, "finished"), ("contrast", 2, "diverged"), ("vflip", 0, "finished")]


def arm(da: str) -> str:
    return "none" if da == "none" else f"{da}@100"


def config(da: str, seed: int) -> dict:
    return {"dataset": "lfw-subset", "n_real": 100, "n_heldout": 20, "image_size": SIZE, "da": da,
            "n_aug": 0 if da == "none" else 100, "pair_ratio": 0.5, "seed": seed, "steps": STEPS, "eval_every": STEPS,
            "eval_samples": N_SAMPLES, "extractor": EXT, "study": "test"}


def kid(da: str, seed: int) -> float:
    base = 0.50 + 0.01 * seed
    return {"none": base, "hflip": base - 0.10, "contrast": base - 0.20, "vflip": 0.10}[da]


def vflip_called(da: str, seed: int) -> int:
    return {"none": 5 + seed, "hflip": 4 + seed, "contrast": 6, "vflip": 9}[da]


def expected_vflip(da: str, seed: int) -> float:
    m, rates = (0.5 if da == "vflip" else 0.0), probe(seed)[VFLIP]
    return m * rates["tpr"] + (1 - m) * rates["fpr"]


def metrics(da: str, seed: int) -> dict:
    return {KID: kid(da, seed), FID: 100 * kid(da, seed), IS: 1.5 + 0.1 * seed, VFLIP: vflip_called(da, seed) / 10,
            VFLIP_EXPECTED: expected_vflip(da, seed), VFLIP_SEEN: 1.0, HFLIP_SEEN: 0.0}


def sample_value(trial: int, i: int) -> int:
    return (trial * 20 + i * 3) % 256


def probe(seed: int) -> dict:
    """The leakage probes' nested-CV rates on real images (inputs.json): vflip TPR 0.9 + 0.02 s, FPR 0.1; hflip,
    blind, TPR 0.5, FPR 0.5 - 0.1 s."""
    return {VFLIP: {"tpr": 0.9 + 0.02 * seed, "fpr": 0.1, "c": 1.0, "measurable": True},
            HFLIP: {"tpr": 0.5, "fpr": 0.5 - 0.1 * seed, "c": 0.01, "measurable": False}}


def floor(seed: int) -> dict:
    return {"n_samples": N_SAMPLES, "n_reference": 20, KID: 0.01 * (seed + 1), IS: 2.0 + 0.1 * seed,
            VFLIP: seed / 10, VFLIP_SEEN: 1.0, HFLIP_SEEN: 0.0}


def reference_images(seed: int) -> torch.Tensor:
    """20 real images per seed: image j is flat 200 - j (seed 0) in a distinct channel pattern per seed."""
    out = torch.zeros(20, 3, SIZE, SIZE, dtype=torch.uint8)
    for j in range(20):
        out[j, seed % 3] = 200 - j
    return out


def write_sweep(root: Path, *, held_out: bool = True) -> Path:
    """The sweep folder under `root` (see the module docstring); `held_out=False`: the reference was the training
    set, so the floors hold only IS."""
    root.mkdir(parents=True, exist_ok=True)
    for t, (da, seed, outcome) in enumerate(TRIALS):
        folder = root / f"{arm(da).replace('@', '_')}-s{seed}-{t:05d}_abcdef12"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps(config(da, seed)))
        report = {"step": STEPS, "train_seconds": 3.0 + seed, "diverged": 0, **metrics(da, seed)}
        if outcome == "diverged":
            report = {"step": 1, "train_seconds": 1.0, "diverged": 1}
        (folder / "result.json").write_text(json.dumps(report) + "\n")
        if outcome == "finished":
            images = torch.stack([torch.full((3, SIZE, SIZE), sample_value(t, i), dtype=torch.uint8)
                                  for i in range(N_SAMPLES)])
            write_image_table(folder / "checkpoint_000000" / FINAL_SAMPLES_FILE, ImageSet.of(images))
    entries = []
    for seed in SEEDS:
        table = f"inputs/reference-{seed:03d}.parquet"
        write_image_table(root / table, ImageSet.of(reference_images(seed), "real"))
        match = {k: config("none", seed)[k] for k in ("dataset", "n_real", "n_heldout", "image_size", "seed",
                                                     "extractor")}
        note = (f"Reference for lfw-subset (seed {seed}): 20 held-out real images, drawn after the 100 training "
                "images in the same seeded order; the GAN never saw them." if held_out else
                f"Reference for lfw-subset (seed {seed}): the 100 training images themselves.")
        values = floor(seed) if held_out else {"n_samples": N_SAMPLES, "n_reference": 100, IS: floor(seed)[IS]}
        entries.append({"key": f"k{seed}", "match": match, "held_out": held_out, "n_reference": 20,
                        "reference_table": table, "notes": [note], "floor": values, "probe": probe(seed)})
    (root / "inputs.json").write_text(json.dumps(entries))
    return root
