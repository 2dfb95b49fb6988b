"""A real, tiny Ray Tune experiment in gansweep's on-disk format, for the records, tracking and report tests.

The trainable does no training: it reports the trainable contract's metric keys with values that are a closed
formula of (DA, seed, step) (`fake_metrics`), so tests can recompute every number by hand. It runs through real
Ray Tune (a few seconds), so `result.json`, `params.json`, `experiment_state-*.json`, checkpoint folders and error
files are exactly what Tune writes. `experiment()` runs it once per pytest session; `run_experiment` runs it again
(e.g. with an MLflow callback attached).

Trials (3 steps each, a report with a checkpoint every step, Tune keeping the last 2 checkpoints):
  none          seeds 0, 1  baseline, finishes
  hflip@100     seeds 0, 1  finishes, FID 10 lower than `none` at every step
  contrast@100  seed 0      diverges at step 2 (a `diverged=1` report without scores is its last)
  vflip@100     seed 0      raises after its step-1 report (Tune writes error.txt / error.pkl)
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

STEPS = 3
SEEDS = (0, 1)
DAS = ("none", "hflip", "contrast", "vflip")
TRIALS = [("none", 0), ("none", 1), ("hflip", 0), ("hflip", 1), ("contrast", 0), ("vflip", 0)]  # (da, seed)
CPU_PER_TRIAL = 1  # two trials at a time on the 2-CPU Ray, actors reused: the fastest setting measured
EXT = "effnet"
FID_BASE = {"none": 100.0, "hflip": 90.0, "contrast": 95.0, "vflip": 120.0}
DIVERGE_AT = {"contrast": 2}  # da -> step whose report is diverged=1 (the trial's last)
FAIL_AFTER = {"vflip": 1}  # da -> step after whose report the trainable raises
GRID_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]  # the sample grid's colour at steps 1, 2, 3


def arm(da: str) -> str:
    return "none" if da == "none" else f"{da}@100"


def fake_metrics(da: str, seed: int, step: int) -> dict:
    """The contract's metric keys for one report; a closed formula so tests can recompute it."""
    out = {"step": step, "loss_d": 1.0 / step, "loss_g": 2.0 + 0.5 * seed, "d_real": 0.7,
           "d_fake": 0.3, "images_per_s": 1000.0 + seed, "train_seconds": 0.5 * step, "diverged": 0}
    if DIVERGE_AT.get(da) == step:
        out.update(diverged=1, loss_d=float("nan"))
        return out
    out.update({
        f"is_mean_{EXT}": 1.0 + 0.1 * step + 0.05 * seed + (0.2 if da == "hflip" else 0.0),
        f"is_std_{EXT}": 0.01,
        f"fid_{EXT}": FID_BASE[da] - 10.0 * step + 3.0 * seed,
        f"kid_mean_{EXT}": 0.1 / step,
        f"kid_std_{EXT}": 0.001,
        f"precision_{EXT}": 0.5 + 0.1 * seed,
        f"recall_{EXT}": 0.4,
    })
    return out


def trial_config(da: str, seed: int) -> dict:
    """A valid flat TrialConfig dict (what params.json holds)."""
    return {"dataset": "lfw-subset", "n_real": 100, "image_size": 32, "da": da, "n_aug": 0 if da == "none" else 100,
            "pair_ratio": 0.5, "seed": seed, "steps": STEPS, "eval_every": 1, "extractor": EXT, "study": "test"}


def _trainable(config: dict) -> None:
    import os

    from PIL import Image
    from ray import tune

    from gan.train import grid_name

    da, seed = config["da"], config["seed"]
    start = 1
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            start = int(Path(d, "step.txt").read_text()) + 1
    for step in range(start, config["steps"] + 1):
        metrics = fake_metrics(da, seed, step)
        if metrics["diverged"]:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            Path(d, "step.txt").write_text(str(step))
            Path(d, "state.pt").write_bytes(b"fake")
            if step == config["steps"]:
                Path(d, "generator.pt").write_bytes(b"fake weights")
            Image.new("RGB", (8, 8), GRID_COLOURS[step - 1]).save(os.path.join(d, grid_name(step)))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        if FAIL_AFTER.get(da) == step:
            raise RuntimeError(f"fake failure of {da} after step {step}")


def run_experiment(storage: Path, name: str = "exp", callbacks=()) -> Path:
    """Run the fake sweep through real Ray Tune under `storage/name`; returns the experiment path."""
    import sys

    import ray
    from ray import cloudpickle, tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from sweep.records import trial_dirname, trial_name

    # Workers cannot import this test helper by name: ship the trainable by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # Explicit points (not a grid): the failing and diverging arms need only one seed each.
        points = [trial_config(da, seed) for da, seed in TRIALS]
        tuner = tune.Tuner(
            tune.with_resources(_trainable, {"cpu": CPU_PER_TRIAL}),
            param_space=trial_config("none", 0),
            tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(points_to_evaluate=points),
                                        num_samples=len(points), reuse_actors=True,
                                        trial_name_creator=lambda t: trial_name(t.config, t.trial_id),
                                        trial_dirname_creator=lambda t: trial_dirname(t.config, t.trial_id)),
            run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0, callbacks=list(callbacks),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()
    return storage / name


@functools.lru_cache(maxsize=None)
def experiment() -> Path:
    """The fake experiment, run once per test session (read-only for tests: copy it before changing it)."""
    root = Path(tempfile.mkdtemp(prefix="gansweep_fake_"))
    atexit.register(shutil.rmtree, root, True)
    return run_experiment(root)


def copy_experiment(dest: Path) -> Path:
    """A private, writable copy of the fake experiment under `dest`."""
    src = experiment()
    out = Path(dest) / src.name
    shutil.copytree(src, out)
    return out
