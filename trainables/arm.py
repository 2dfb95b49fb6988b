"""The Tune function trainable for one trial of any study: a DA-ablation arm (study 1) or a way to 128x128 (study 2).

Build (config -> training data -> networks), restore from the last checkpoint if there is one, then loop: train up
to the next evaluation step (or until the time budget is spent), sample the fixed evaluation noise at the study's
evaluation size, score it against the reference, report metrics with a checkpoint (the full TrainState plus the
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

from gan import augment, metrics, methods, train
from gan.cache import image_hash
from gan.checkpoint import build_state, load_state, save_generator, save_state
from gan.config import TrialConfig
from gan.imagetable import ImageSet, write_image_table
from gan.runtime import device_name, select_device, set_threads
from trainables import session
from trainables.files import DATA_DIGEST, FINAL_SAMPLES_FILE, REFERENCE_DIGEST, STATE_FILE, WEIGHTS_FILE
from trainables.inputs import TrialInputs, input_key


def _resolve(inputs) -> TrialInputs:
    return ray.get(inputs) if isinstance(inputs, ray.ObjectRef) else inputs


def training_data(cfg: TrialConfig, shared: TrialInputs, device) -> tuple:
    """A study-1 trial's composed set (real + DA, uint8 on the device), or a method's images at every size it needs;
    with the `image_hash` of the images it trains on (the composed set, or the method's real images)."""
    if cfg.method:
        return methods.prepare_data(shared.real.images, cfg, device), image_hash(shared.real.images)
    composed = augment.compose(shared.real, cfg.da, cfg.n_aug, pair_ratio=cfg.pair_ratio, seed=cfg.seed,
                               generated=shared.generated, allow_repeats=cfg.allow_repeats)
    return composed.images.to(device), image_hash(composed.images)


def expected_leakage(cfg: TrialConfig, shared: TrialInputs, data) -> dict:
    """The leakage of a generator that reproduces this trial's training set `data` (`gan.leakage.LeakageProbe.
    expected`); {} without a probe or for a method trial."""
    probe = shared.reference.leakage
    return {} if cfg.method or probe is None else probe.expected(data)


def train_arm(config: dict, inputs: dict | None = None) -> None:
    """Train one trial. `inputs` maps `input_key(cfg)` to `TrialInputs` (or an ObjectRef to one)."""
    cfg = TrialConfig(**config)
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # else a line per checkpoint

    key = input_key(cfg)
    if key not in (inputs or {}):
        raise KeyError(f"no prepared inputs for {key}; the driver prepared {sorted(inputs or {})} "
                       "(trials must come from the sweep's own configs)")
    shared = _resolve(inputs[key])
    device = select_device()
    set_threads(session.cpus_allotted())
    data, digest = training_data(cfg, shared, device)
    digests = {DATA_DIGEST: digest, REFERENCE_DIGEST: image_hash(shared.reference_images.images)}
    checkpoint = session.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = load_state(cfg, Path(d) / STATE_FILE, device)
    else:
        state = build_state(cfg, device)
    methods.match_grey(state.nets, shared.real.images)
    expected = expected_leakage(cfg, shared, data)

    extractor = metrics.get_extractor(cfg.extractor, device, inception_weights=cfg.inception_weights or None)
    z = train.eval_noise(cfg, cfg.eval_samples, device)
    splits = min(cfg.is_splits, cfg.eval_samples)

    while not state.finished:
        sr_stats, stats = train.train_until(state, data, (state.step // cfg.eval_every + 1) * cfg.eval_every)
        result = {k: v for k, v in (stats.as_dict() if stats else {}).items()
                  if k not in ("steps", "seconds", "diverged")}  # this call's counts: the state's totals follow
        result.update(step=state.step, train_seconds=state.elapsed, diverged=int(state.diverged),
                      device=device_name(device), **digests)
        if stats is not None and stats.seconds > 0:  # the clock's speed: equal-time trials must run at one speed
            result["iters_per_s"] = stats.steps / stats.seconds
        if state.method.srcnn:  # the SRCNN's own iteration count, reported apart from the GAN's
            result["sr_step"] = state.sr_step
        if sr_stats is not None:
            result["loss_sr"] = sr_stats.loss
        if ray.is_initialized():  # which node ran this report (cluster debugging; the fault tests check it)
            result["node_id"] = ray.get_runtime_context().get_node_id()
        if state.diverged:  # non-finite loss: end this trial, the sweep goes on
            session.report(result)
            return
        fake = train.sample(state, z, size=cfg.image_size)
        result.update(metrics.compute_metrics(fake, extractor, shared.reference, splits=splits, seed=cfg.seed))
        result.update(expected)
        with tempfile.TemporaryDirectory() as d:
            save_state(state, Path(d) / STATE_FILE)
            train.save_grid(fake[:train.GRID_SAMPLES], Path(d) / train.grid_name(state.step))
            if state.finished:  # the final checkpoint: what a researcher samples and surveys later
                if state.method.srcnn:
                    result.update(methods.srcnn_quality(state.nets["SR"], shared.reference_images.images))
                save_generator(state, Path(d) / WEIGHTS_FILE)
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
