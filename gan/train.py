"""GAN training: the chunked loops (with an optional time budget), sampling, sample grids, and the local loop of
`gansweep train`. The state they advance, and its checkpoint files, are `gan.checkpoint`'s.

Training data is uint8 on the training device; a step draws a random index batch and converts it to float in [-1, 1]
there (no DataLoader, no per-step PIL work). What one step of each method is, and what it is made of, lives in
`gan.methods` and `gan.steps`; a study-1 config (method "") trains a DCGAN at `image_size`, one D update then one G
update per step, exactly as before methods existed. Loss statistics stay on the device and are read once per call;
the per-step host sync is the divergence check, free on the CPU and done every `CUDA_CHECK_EVERY` steps on a GPU.

Training time is the clock (`clock`) around the iterations of `train_steps` and `train_srcnn`, read after the device
has finished their work; sampling, evaluation and checkpointing happen outside them and never count. With a time
budget (`cfg.time_budget` > 0) the clock is read after every iteration on the CPU, and every `CUDA_CHECK_EVERY` on
a GPU (each read is a device sync), and training stops after the iteration during which the budget was reached: it
overshoots by less than one iteration (on a GPU, `CUDA_CHECK_EVERY`). On a GPU (`WARM_UP_DEVICES`) the first
iteration of each network set in a process (GAN, SRCNN) runs before a budgeted clock starts: cuDNN's autotuning
happens there, and would otherwise charge the methods unequally for it. Where a budgeted run stops depends on the
machine's speed, so only its iterations, not its stopping point, are reproducible.

Sample grids are named by `grid_name(step)` wherever they are written (the local loop's folder, a trial's
checkpoints), and `grid_step` reads the step back from a name.

The EMA generators (`cfg.ema`) are updated after every GAN iteration (`gan.daug.update_ema`); sampling uses them
(`TrainState.scored_nets`), training never does.

Deliberately left out: gradient penalties, multi-GPU, compile. `train` is the plain local loop of
`gansweep train` and of the sweep's donor GAN; Ray trainables drive `build_state`/`train_steps` themselves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from gan.checkpoint import TrainState, build_state, save_state
from gan.config import TrialConfig
from gan.daug import ema_decay, update_ema
from gan.methods import SR_HIGH, TrainData, match_grey, prepare_data
from gan.realsets import to_size
from gan.runtime import autocast, select_device
from gan.steps import random_crops, srcnn_update, stream_seed, to_uint8

CUDA_CHECK_EVERY = 10  # on a GPU, look for a non-finite loss every this many steps (each look is a host sync)
clock = time.perf_counter  # the training clock (a module attribute so that tests can drive it)
WARM_UP_DEVICES = ("cuda",)  # device types whose first iteration (autotuning) a budgeted clock leaves out
_warmed: set[tuple[str, str]] = set()  # (method or "srcnn", device) warmed up in this process


def _warm_up(state: TrainState, part: str, n_steps: int) -> int:
    """1 when this budgeted call's first iteration is the process's first of `part` on this device (run it before
    the clock starts), else 0."""
    key = (part, str(state.device))
    if state.cfg.time_budget <= 0 or state.device.type not in WARM_UP_DEVICES or not n_steps or state.out_of_time \
            or key in _warmed:
        return 0
    _warmed.add(key)
    return 1


# ---------------------------------------------------------------------------------------------------------------------
# the loops


@dataclass
class StepStats:
    """Means over the GAN iterations of one `train_steps` call. The four named statistics are the (first) G/D pair's;
    `extra` holds the others of the method (stackgan128: stage II's, as loss_d2, loss_g2, d_real2, d_fake2) and,
    with d_aug ada, ADA's p and last r_t after the call (`gan.daug.DAug.stats`: ada_p, ada_rt, ada_p_D2, ...)."""

    loss_d: float  # mean BCE(D(x), 1) + BCE(D(G(z)), 0)
    loss_g: float  # mean BCE(D(G(z)), 1), the non-saturating generator loss
    d_real: float  # mean sigmoid(D(x)) on real batches
    d_fake: float  # mean sigmoid(D(G(z))) before the D update
    images_per_s: float  # real images drawn per training second
    steps: int  # steps actually run (fewer than asked when diverged or out of time)
    seconds: float  # training seconds of this call
    diverged: bool = False  # a non-finite loss ended the call
    extra: dict[str, float] = field(default_factory=dict)  # the method's other statistics, by name

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        extra = out.pop("extra")
        return {**out, **extra}


@dataclass
class SRStats:
    """Means over the SRCNN iterations of one `train_srcnn` call."""

    loss: float  # mean squared error, images in [-1, 1]
    steps: int  # iterations actually run
    seconds: float  # training seconds of this call
    diverged: bool = False  # a non-finite loss ended the call

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _as_train_data(state: TrainState, data) -> TrainData:
    """`data` as the method's TrainData: a TrainData, or (one-size methods and study-1) the uint8 tensor itself."""
    method = state.method
    if isinstance(data, torch.Tensor):
        data = TrainData({int(data.shape[-1]): data})
    missing = [s for s in method.train_sizes if s not in data.images]
    if missing or (method.srcnn and data.sr_input is None):
        have = ", ".join(map(str, data.images))
        raise ValueError(f"{method.name} trains on images at {', '.join(map(str, method.train_sizes))} px"
                         f"{' and an SRCNN input' if method.srcnn else ''}, got {have}: build the data with "
                         "gan.methods.prepare_data(images, cfg, device)")
    return data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _over_budget(state: TrainState, t0: float) -> bool:
    """After an iteration: has the training clock (this call's part included) reached the time budget?"""
    if state.cfg.time_budget <= 0:
        return False
    _sync(state.device)
    return state.elapsed + (clock() - t0) >= state.cfg.time_budget


def train_steps(state: TrainState, data, n_steps: int, cfg: TrialConfig | None = None, *, bar=None) -> StepStats:
    """Run up to `n_steps` GAN iterations of the state's method; stop at once on a non-finite loss, and after the
    iteration that reaches `cfg.time_budget` if there is one.

    `data`: the `gan.methods.prepare_data` TrainData, or for one-size methods and study-1 configs the uint8 tensor
    on the device. `cfg` may be given for the study-1 signature; it must be the state's own config. Never raises on
    divergence: the stats say `diverged=True` and `state.diverged` is set. `bar` (a tqdm bar) advances per step.
    """
    if cfg is not None and cfg != state.cfg:
        raise ValueError("train_steps trains the state's own config; build a state for another config")
    method, data = state.method, _as_train_data(state, data)
    losses = [i for i, name in enumerate(method.stats) if name.startswith("loss")]
    for net in state.nets.values():
        net.train()
    check_every = 1 if state.device.type == "cpu" else CUDA_CHECK_EVERY  # CPU: reading a scalar costs nothing
    total = torch.zeros(len(method.stats), device=state.device)  # running sums, they stay on the device
    done, diverged = _warm_up(state, method.name, n_steps), False
    if done:  # outside the clock: autotuning
        total += method.step(state, data)
        _sync(state.device)
    t0 = clock()
    for i in range(done, 0 if state.out_of_time else n_steps):
        total += method.step(state, data)
        _update_ema(state, state.step + i)
        done += 1
        if (i + 1) % check_every == 0 or i + 1 == n_steps:
            if not torch.isfinite(total[losses]).all():  # a NaN/inf in any loss ends training (a host sync)
                diverged = True
                break
        if bar is not None:
            bar.update(1)
        if (i + 1) % check_every == 0 and _over_budget(state, t0):
            break
    means = (total / max(done, 1)).tolist()  # syncs the device, so the clock below covers all the work
    seconds = clock() - t0
    state.step += done
    state.elapsed += seconds
    state.diverged = state.diverged or diverged
    named = {**dict(zip(method.stats, means)), **state.daug.stats()}
    return StepStats(*(named.pop(k) for k in ("loss_d", "loss_g", "d_real", "d_fake")),
                     images_per_s=done * state.cfg.batch_size / max(seconds, 1e-9), steps=done, seconds=seconds,
                     diverged=diverged, extra=named)


def _update_ema(state: TrainState, step: int) -> None:
    """Move every EMA generator towards its raw one after GAN iteration `step` (0-based)."""
    if state.ema:
        beta = ema_decay(state.cfg.ema, step)
        for name, ema in state.ema.items():
            update_ema(ema, state.nets[name], beta)


def train_srcnn(state: TrainState, data: TrainData, n_steps: int) -> SRStats:
    """Run up to `n_steps` SRCNN iterations (dcgan64+srcnn): each a batch of `batch_size` random `srcnn_patch`-pixel
    crops, the same window of the bicubic input and of the real 128x128 image, and one Adam step on their MSE (its
    rate annealed over `srcnn_steps`, see `gan.steps.srcnn_lr`). Stops on a non-finite loss and after the iteration
    that reaches the time budget; the seconds count in `elapsed` and in `sr_elapsed`."""
    if not state.method.srcnn:
        raise ValueError(f"method {state.method.name} has no SRCNN to train")
    data = _as_train_data(state, data)
    cfg, sr = state.cfg, state.nets["SR"]
    sr.train()
    check_every = 1 if state.device.type == "cpu" else CUDA_CHECK_EVERY
    total, done, diverged = torch.zeros(1, device=state.device), _warm_up(state, "srcnn", n_steps), False
    for i in range(done):  # outside the clock: autotuning
        total += srcnn_update(state, *random_crops(state, data.sr_input, data.images[SR_HIGH], cfg.srcnn_patch,
                                                   cfg.batch_size), state.sr_step)
        _sync(state.device)
    t0 = clock()
    for i in range(done, 0 if state.out_of_time else n_steps):
        upscaled, target = random_crops(state, data.sr_input, data.images[SR_HIGH], cfg.srcnn_patch, cfg.batch_size)
        total += srcnn_update(state, upscaled, target, state.sr_step + i)
        done += 1
        if (i + 1) % check_every == 0 or i + 1 == n_steps:
            if not torch.isfinite(total).all():
                diverged = True
                break
        if (i + 1) % check_every == 0 and _over_budget(state, t0):
            break
    loss = (total / max(done, 1)).item()
    seconds = clock() - t0
    state.sr_step += done
    state.elapsed += seconds
    state.sr_elapsed += seconds
    state.diverged = state.diverged or diverged
    return SRStats(loss=loss, steps=done, seconds=seconds, diverged=diverged)


def train_until(state: TrainState, data, until: int | None = None, *, bar=None
                ) -> tuple[SRStats | None, StepStats | None]:
    """Train the state's method up to GAN iteration `until` (default `cfg.steps`), or until its training clock
    reaches `cfg.time_budget`, or until it diverges, whichever comes first. dcgan64+srcnn first finishes its SRCNN
    phase (`srcnn_steps` iterations, inside the same budget). Returns the stats of the SRCNN iterations and of the
    GAN iterations this call ran (None where it ran none). Call it again with a later `until` to go on."""
    until = state.cfg.steps if until is None else min(until, state.cfg.steps)
    data = _as_train_data(state, data)
    sr_stats = gan_stats = None
    if state.sr_remaining and not state.finished:
        sr_stats = train_srcnn(state, data, state.sr_remaining)
    if state.step < until and not state.finished:
        gan_stats = train_steps(state, data, until - state.step, bar=bar)
    return sr_stats, gan_stats


# ---------------------------------------------------------------------------------------------------------------------
# evaluation noise, sampling, grids


def eval_noise(cfg: TrialConfig, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed evaluation noise (n, nz, 1, 1) of `cfg.seed`: drawn on the CPU from its own stream, so it is the
    same on every device, for every checkpoint, and independent of the training RNG streams. Every method draws a
    sample from one such z (stackgan128's stage II reuses stage I's)."""
    g = torch.Generator().manual_seed(stream_seed(cfg.seed, "eval"))
    return torch.randn(n, cfg.nz, 1, 1, generator=g).to(device)


def generate(G: torch.nn.Module, z: torch.Tensor, batch_size: int = 256, *, precision: str = "fp32") -> torch.Tensor:
    """Images G(z) as uint8 (N, 3, H, W) on the CPU, made in eval mode under inference_mode; G's mode is restored."""
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        with torch.inference_mode(), autocast(device, precision):
            out = [to_uint8(G(chunk.to(device))).cpu() for chunk in z.split(batch_size)]  # [-1,1] -> 0..255
    finally:
        G.train(was_training)
    return torch.cat(out).contiguous()  # plain NCHW, whatever G's memory format


def sample(state: TrainState, z: torch.Tensor, batch_size: int = 256, *, size: int | None = None) -> torch.Tensor:
    """The method's images from noise z, as uint8 (N, 3, S, S) on the CPU: S is the method's output size (stage II's
    128 for stackgan128, the SRCNN's 128 for dcgan64+srcnn), or `size` if given (brought there by the fixed resize
    `to_size`, e.g. 32x32 and 64x64 samples to the 128x128 evaluation size). Made in eval mode under inference_mode
    at the state's precision, from `state.scored_nets` (the EMA generators when cfg.ema > 0); every network's mode is
    restored."""
    nets = state.scored_nets
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    try:
        with torch.inference_mode(), autocast(state.device, state.precision):
            out = [state.method.sample(nets, chunk.to(state.device)).cpu() for chunk in z.split(batch_size)]
    finally:
        for name, net in nets.items():
            net.train(modes[name])
    images = torch.cat(out).contiguous()
    return to_size(images, size) if size else images


GRID_SAMPLES = 64  # images per sample grid
_GRID_NAME = re.compile(r"samples_step(\d+)\.png")


def grid_name(step: int) -> str:
    """The file name of the sample grid of `step`: `samples_step000300.png`. Every grid gansweep writes (the local
    loop's, a trial checkpoint's) is named here, and `grid_step` reads the step back."""
    return f"samples_step{int(step):06d}.png"


def grid_step(name: str) -> int | None:
    """The step of a `grid_name` (None for any other file name)."""
    match = _GRID_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def save_grid(images_uint8: torch.Tensor, path, nrow: int | None = None) -> None:
    """A PNG grid of uint8 images (N,3,H,W); `nrow` images per row (default: a near-square grid)."""
    import torchvision.utils as vutils  # here: a second of import that `gansweep --help` never needs

    nrow = nrow or max(1, math.ceil(math.sqrt(images_uint8.shape[0])))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    vutils.save_image(images_uint8.float().div(255), str(path), nrow=nrow, padding=2)  # save_image rounds back exactly


# ---------------------------------------------------------------------------------------------------------------------
# the local loop


PROGRESS = ("bar", "lines", "off")  # how `train` shows progress


class LineProgress:
    """Progress as whole lines on stderr, one every tenth of the steps: what a log shows (Ray forwards a worker's
    lines, while a tqdm bar redraws one line with carriage returns and shows up only when it ends). It offers the
    part of tqdm's interface that `train` and `train_steps` use."""

    def __init__(self, total: int, initial: int, desc: str):
        self.total, self.n, self.desc = total, initial, desc
        self.every = max(1, math.ceil(total / 10))  # steps between two lines
        self.next = (initial // self.every + 1) * self.every  # the step of the next line
        self.started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= min(self.next, self.total):
            self.write(f"{self.desc}: step {self.n}/{self.total} ({100 * self.n // self.total}%), "
                       f"{time.perf_counter() - self.started:.1f} s")
            self.next = (self.n // self.every + 1) * self.every

    def set_postfix(self, **values) -> None:
        """Nothing: the lines carry progress only."""

    def write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def train(cfg: TrialConfig, data_uint8, out_dir, *, device: torch.device | None = None, progress: str = "bar",
          desc: str = "train", on_eval: Callable[[TrainState, StepStats], None] | None = None,
          state: TrainState | None = None) -> TrainState:
    """Train cfg's method to `cfg.steps` GAN iterations (or its time budget) in chunks of `cfg.eval_every`, writing a
    sample grid at each chunk end; dcgan64+srcnn trains its SRCNN first.

    `data_uint8`: an ImageSet or uint8 tensor (N,3,S,S) at `cfg.image_size`: a study-1 composed set, or a method's
    real set (prepared once for the method by `gan.methods.prepare_data`). Files in `out_dir`: `grid_name(step)`
    (the fixed eval noise, at the method's output size), `log.jsonl` (one line per chunk: StepStats, and the SRStats
    of an SRCNN phase under "sr") and `state.pt` (the final TrainState). Chunk ends fall on multiples of
    `eval_every`, so a run continued from `state` (e.g. `load_state` of an earlier `state.pt`) evaluates at the same
    steps. Stops early on divergence (`state.diverged`), still writing `state.pt`. `on_eval` is called after every
    chunk that ran GAN iterations. `progress` (one of `PROGRESS`): a tqdm bar, `LineProgress` lines headed `desc`
    (for logs, e.g. a Ray task's), or nothing.
    """
    if progress not in PROGRESS:
        raise ValueError(f"progress {progress!r} is unknown; allowed: {', '.join(PROGRESS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = device or (state.device if state is not None else select_device())
    state = state or build_state(cfg, device)
    images = getattr(data_uint8, "images", data_uint8)  # an ImageSet or the tensor itself
    match_grey(state.nets, images)
    data = prepare_data(images, cfg, device)
    z_grid = eval_noise(cfg, GRID_SAMPLES, device)
    bar = LineProgress(cfg.steps, state.step, desc) if progress == "lines" else \
        tqdm(total=cfg.steps, initial=state.step, desc=desc, unit="step", disable=progress == "off")
    with bar, open(out_dir / "log.jsonl", "a") as log:
        while not state.finished:
            until = min(state.step - state.step % cfg.eval_every + cfg.eval_every, cfg.steps)  # the next eval step
            sr_stats, stats = train_until(state, data, until, bar=bar)
            record = {"step": state.step, "sr_step": state.sr_step, "elapsed": state.elapsed,
                      **(stats.as_dict() if stats else {}), **({"sr": sr_stats.as_dict()} if sr_stats else {})}
            log.write(json.dumps(record) + "\n")
            log.flush()
            if state.diverged:
                losses = f" (loss_d={stats.loss_d}, loss_g={stats.loss_g})" if stats else ""
                bar.write(f"diverged at step {state.step}: non-finite loss{losses}; stopping")
            else:
                if stats:
                    bar.set_postfix(loss_d=f"{stats.loss_d:.3f}", loss_g=f"{stats.loss_g:.3f}",
                                    img_s=f"{stats.images_per_s:.0f}")
                save_grid(sample(state, z_grid), out_dir / grid_name(state.step))
            if on_eval is not None and stats is not None:
                on_eval(state, stats)
    save_state(state, out_dir / "state.pt")
    return state
