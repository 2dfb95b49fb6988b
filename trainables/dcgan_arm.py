"""The Tune function trainable for one arm of a study.

Build (config -> composed set -> models), restore from the last checkpoint if there is one, then loop: train
`eval_every` steps, score the fixed evaluation noise, report metrics with a checkpoint (the full TrainState plus the
sample grid). The final checkpoint also holds the generator's weights and the scored samples. A restored trial
continues exactly where it stopped; a diverging one reports `diverged=1` and ends.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from pathlib import Path

import ray

from gan import augment, metrics, train
from gan.config import TrialConfig
from gan.imagetable import ImageSet, write_image_table
from gan.runtime import select_device, set_threads
from trainables import session
from trainables.files import FINAL_SAMPLES_FILE, GRID_FILE, STATE_FILE, WEIGHTS_FILE
from trainables.inputs import TrialInputs, input_key


def _resolve(inputs) -> TrialInputs:
    return ray.get(inputs) if isinstance(inputs, ray.ObjectRef) else inputs


def train_arm(config: dict, inputs: dict | None = None) -> None:
    """Train one arm. `inputs` maps `input_key(cfg)` to `TrialInputs` (or an ObjectRef to one)."""
    cfg = TrialConfig(**config)
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # else a line per checkpoint

    key = input_key(cfg)
    if key not in (inputs or {}):
        raise KeyError(f"no prepared inputs for {key}; the driver prepared {sorted(inputs or {})} "
                       "(trials must come from the sweep's own configs)")
    shared = _resolve(inputs[key])
    composed = augment.compose(shared.real, cfg.da, cfg.n_aug, pair_ratio=cfg.pair_ratio, seed=cfg.seed,
                               generated=shared.generated, allow_repeats=cfg.allow_repeats)

    device = select_device()
    set_threads(session.cpus_allotted())
    data = composed.images.to(device)
    checkpoint = session.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = train.load_state(cfg, Path(d) / STATE_FILE, device)
    else:
        state = train.build_state(cfg, device)

    extractor = metrics.get_extractor(cfg.extractor, device, inception_weights=cfg.inception_weights or None)
    z = train.eval_noise(cfg, cfg.eval_samples, device)
    splits = min(cfg.is_splits, cfg.eval_samples)

    while state.step < cfg.steps:
        n = min(cfg.eval_every - state.step % cfg.eval_every, cfg.steps - state.step)
        stats = train.train_steps(state, data, n, cfg)
        result = {
            "step": state.step, "loss_d": stats.loss_d, "loss_g": stats.loss_g, "d_real": stats.d_real,
            "d_fake": stats.d_fake, "images_per_s": stats.images_per_s, "train_seconds": state.elapsed,
            "diverged": int(stats.diverged),
        }
        if ray.is_initialized():  # which node ran this report (cluster debugging; the fault tests check it)
            result["node_id"] = ray.get_runtime_context().get_node_id()
        if stats.diverged:  # non-finite loss: end this trial, the sweep goes on
            session.report(result)
            return
        fake = train.generate(state.G, z)
        result.update(metrics.compute_metrics(fake, extractor, shared.reference, splits=splits, seed=cfg.seed))
        with tempfile.TemporaryDirectory() as d:
            train.save_state(state, Path(d) / STATE_FILE)
            train.save_grid(fake[:64], Path(d) / GRID_FILE)
            if state.step >= cfg.steps:  # the final checkpoint: what a researcher samples and surveys later
                train.save_generator(state, Path(d) / WEIGHTS_FILE)
                write_image_table(Path(d) / FINAL_SAMPLES_FILE, ImageSet.of(fake),
                                  metadata={"arm": cfg.arm, "seed": cfg.seed, "step": state.step})
            session.report(result, checkpoint_dir=d)
        _chaos_hook(state.step)


def _chaos_hook(step: int) -> None:
    """Fault injection for the fault-tolerance tests, driven by files in `$GANSWEEP_CHAOS_DIR`: after the report of
    step N, `kill_at_step` (N) SIGKILLs this worker once (a marker file `killed` makes it fire only once), and
    `fail_at_step` (N) raises, as a bug in a trial would."""
    folder = os.environ.get("GANSWEEP_CHAOS_DIR")
    if not folder:
        return
    fail = Path(folder) / "fail_at_step"
    if fail.exists() and step == int(fail.read_text()):
        raise RuntimeError(f"injected failure after step {step} ({fail})")
    kill = Path(folder) / "kill_at_step"
    if not kill.exists() or step != int(kill.read_text()):
        return
    try:
        fd = os.open(Path(folder) / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
