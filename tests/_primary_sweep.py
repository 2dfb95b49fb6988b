"""A real, tiny Ray Tune experiment for the primary hypotheses: study 1's design (`DA_DESIGN`: vflip leaks vflip,
negpos leaks negpos) on the demo's 3 arms x 6 seeds, one report per trial whose values are a closed formula of
(DA, seed), so the tests recompute every p, Δ and interval by hand.

    arm        leakage_vflip (of 100 samples)   leakage_negpos                KID
    none       (4 + s % 3) / 100                (10 + s) / 100                0.50 + 0.01 s
    vflip@64   none + VFLIP_GAIN[s]             as none                       none + 0.08 + 0.003 (s % 2)  (worse)
    negpos@64  as none                          none + NEGPOS_NOISE[s]        none - 0.05 - 0.002 (s % 3)  (better)

vflip leaks on every seed by a varying amount (exact one-sided sign-flip p = 2^-6); negpos's share differs by noise
around 0, so it does not; in KID negpos is better and vflip worse, both differences holding (exploratory).
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path

from gan.metrics.schema import leakage_keys

EXT = "effnet"
KID, VFLIP, NEGPOS = f"kid_mean_{EXT}", leakage_keys(EXT, "vflip")[0], leakage_keys(EXT, "negpos")[0]
SEEDS = tuple(range(6))
DAS = ("none", "vflip", "negpos")
N_SAMPLES = 100
VFLIP_GAIN = (0.40, 0.40, 0.40, 0.43, 0.43, 0.43)
NEGPOS_NOISE = (0.03, -0.02, 0.01, -0.01, 0.02, -0.03)


def arm(da: str) -> str:
    return "none" if da == "none" else f"{da}@64"


def config(da: str, seed: int) -> dict:
    """A valid flat TrialConfig dict."""
    return {"dataset": "lfw-subset", "n_real": 64, "n_heldout": 36, "image_size": 32, "da": da,
            "n_aug": 0 if da == "none" else 64, "pair_ratio": 0.5, "seed": seed, "steps": 1, "eval_every": 1,
            "eval_samples": N_SAMPLES, "extractor": EXT, "study": "demo"}


def metrics(da: str, seed: int) -> dict:
    vflip = (4 + seed % 3) / 100 + (VFLIP_GAIN[seed] if da == "vflip" else 0.0)
    negpos = (10 + seed) / 100 + (NEGPOS_NOISE[seed] if da == "negpos" else 0.0)
    kid = 0.50 + 0.01 * seed + {"none": 0.0, "vflip": 0.08 + 0.003 * (seed % 2),
                                "negpos": -0.05 - 0.002 * (seed % 3)}[da]
    # shares as whole samples out of N_SAMPLES, as a probe's calls are
    return {"step": 1, "diverged": 0, KID: kid, VFLIP: round(vflip * N_SAMPLES) / N_SAMPLES,
            NEGPOS: round(negpos * N_SAMPLES) / N_SAMPLES, "train_seconds": 1.0}


def _trainable(config: dict) -> None:
    from ray import tune

    tune.report(metrics(config["da"], config["seed"]))


@functools.lru_cache(maxsize=None)
def experiment() -> Path:
    """Run the sweep once per test session through real Ray Tune; returns its folder (read-only for tests)."""
    import ray
    from ray import cloudpickle, tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from sweep.records import trial_dirname, trial_name

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    storage = Path(tempfile.mkdtemp(prefix="gansweep_primary_"))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        points = [config(da, s) for s in SEEDS for da in DAS]
        tune.Tuner(
            tune.with_resources(_trainable, {"cpu": 1}), param_space=config("none", 0),
            tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(points_to_evaluate=points),
                                        num_samples=len(points), reuse_actors=True,
                                        trial_name_creator=lambda t: trial_name(t.config, t.trial_id),
                                        trial_dirname_creator=lambda t: trial_dirname(t.config, t.trial_id)),
            run_config=tune.RunConfig(storage_path=str(storage), name="primary", verbose=0),
        ).fit()
    finally:
        if started:
            ray.shutdown()
    return storage / "primary"
