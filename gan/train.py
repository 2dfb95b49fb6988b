"""GAN training: the step, the chunked loop, and checkpoint state that continues bit-exactly.

The data is a uint8 tensor (N,3,H,W) that lives on the training device; a step draws a random index batch and
converts it to float in [-1, 1] there (no DataLoader, no per-step PIL work). One step is one discriminator update
followed by one generator update with the non-saturating loss (Goodfellow et al. 2014, as in DCGAN):

    loss_d = BCE(D(x), 1) + BCE(D(G(z)), 0)        loss_g = BCE(D(G(z)), 1)

`TrainState` holds everything needed to continue exactly: G, D, both Adam optimisers, the step count, the training
time so far, and every RNG stream (batch indices, noise, torch's global CPU/CUDA generators). Loss statistics stay
on the device and are read once per `train_steps` call; the only per-step host sync is the divergence check, which
is free on the CPU and done every `CUDA_CHECK_EVERY` steps on a GPU.

Deliberately left out: gradient penalties, EMA generators, multi-GPU, compile. `train` is the plain local loop of
`gansweep train` and of the sweep's donor GAN; Ray trainables drive `build_state`/`train_steps` themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from gan.config import TrialConfig, flat
from gan.models.dcgan import build_dcgan
from gan.runtime import autocast, configure_backends, resolve_precision, select_device

CUDA_CHECK_EVERY = 10  # on a GPU, look for a non-finite loss every this many steps (each look is a host sync)


# ---------------------------------------------------------------------------------------------------------------------
# RNG streams


def _stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one named RNG stream, so the streams of one trial seed are independent of each other."""
    digest = hashlib.sha256(f"gansweep:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ---------------------------------------------------------------------------------------------------------------------
# state and checkpoints


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped."""

    cfg: TrialConfig
    device: torch.device
    precision: str  # resolved: fp32 | bf16
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    batch_gen: torch.Generator  # CPU generator for the batch indices
    noise_gen: torch.Generator  # generator on the device for the training noise z
    step: int = 0  # training steps done
    elapsed: float = 0.0  # training seconds so far (evaluation excluded)
    diverged: bool = False  # a non-finite loss stopped training

    def state_dict(self) -> dict:
        """Tensors, dicts, numbers and strings only, so `torch.load(weights_only=True)` can read it back."""
        rng = {"batch": self.batch_gen.get_state(), "noise": self.noise_gen.get_state(),
               "noise_device": self.device.type, "torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["torch_cuda"] = torch.cuda.get_rng_state_all()
        return {"step": self.step, "elapsed": self.elapsed, "diverged": self.diverged,
                "G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": rng, "config": dataclasses.asdict(self.cfg)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore models, optimisers, counters and every RNG stream from `state_dict()`."""
        self.G.load_state_dict(sd["G"])
        self.D.load_state_dict(sd["D"])
        self.opt_g.load_state_dict(sd["opt_g"])
        self.opt_d.load_state_dict(sd["opt_d"])
        self.step, self.elapsed, self.diverged = int(sd["step"]), float(sd["elapsed"]), bool(sd["diverged"])
        rng = sd["rng"]
        self.batch_gen.set_state(rng["batch"])
        if rng["noise_device"] == self.device.type:
            self.noise_gen.set_state(rng["noise"])
        else:  # CPU and CUDA generator states are not interchangeable: continue on a fresh, still seeded stream
            self.noise_gen.manual_seed(_stream_seed(self.cfg.seed, f"noise@{self.step}"))
        torch.set_rng_state(rng["torch_cpu"])
        if "torch_cuda" in rng and torch.cuda.is_available() and len(rng["torch_cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["torch_cuda"])

    @classmethod
    def from_state_dict(cls, cfg: TrialConfig, sd: dict, device: torch.device | None = None) -> "TrainState":
        state = build_state(cfg, device)
        state.load_state_dict(sd)
        return state


def build_state(cfg: TrialConfig, device: torch.device | None = None) -> TrainState:
    """Fresh G, D and optimisers for `cfg`, every RNG stream seeded from `cfg.seed` (same seed -> same init)."""
    device = device or select_device()
    torch.manual_seed(cfg.seed)  # global CPU (and CUDA) RNG: drives the weight init below
    G, D = build_dcgan(cfg.image_size, cfg.nz, cfg.g_width, cfg.d_width)
    G = G.to(device, memory_format=torch.channels_last)  # NHWC convs: faster with oneDNN on CPU and tensor cores
    D = D.to(device, memory_format=torch.channels_last)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=betas)
    batch_gen = torch.Generator().manual_seed(_stream_seed(cfg.seed, "batch"))
    noise_gen = torch.Generator(device=device).manual_seed(_stream_seed(cfg.seed, "noise"))
    configure_backends(device, cfg.deterministic)  # cuDNN benchmark, or deterministic kernels (gan.runtime)
    return TrainState(cfg, device, resolve_precision(cfg.precision, device), G, D, opt_g, opt_d, batch_gen, noise_gen)


def save_state(state: TrainState, path) -> None:
    """Write `state.state_dict()` atomically (a temporary file, then os.replace): a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state.state_dict(), tmp)
    os.replace(tmp, path)


def load_state(cfg: TrialConfig, path, device: torch.device | None = None) -> TrainState:
    """A TrainState restored from `save_state`'s file, safely (`weights_only=True`)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return TrainState.from_state_dict(cfg, sd, device)


def save_generator(state: TrainState, path) -> None:
    """The generator alone, with the config that builds it: what a researcher loads to sample an arm later
    (`load_generator`). Written atomically; plain tensors and values, so it loads with `weights_only=True`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"generator": state.G.state_dict(), "config": flat(state.cfg), "step": state.step}, tmp)
    os.replace(tmp, path)


def load_generator(path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, TrialConfig]:
    """(G in eval mode, its TrialConfig) from `save_generator`'s file, read with `weights_only=True`.

        G, cfg = load_generator("generator.pt")
        images = generate(G, eval_noise(cfg, 64))
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = TrialConfig(**saved["config"])
    G, _ = build_dcgan(cfg.image_size, cfg.nz, cfg.g_width, cfg.d_width)
    G.load_state_dict(saved["generator"])
    return G.to(device).eval(), cfg


# ---------------------------------------------------------------------------------------------------------------------
# the training step


@dataclass
class StepStats:
    """Means over one `train_steps` call."""

    loss_d: float
    loss_g: float
    d_real: float  # mean sigmoid(D(x)) on real batches
    d_fake: float  # mean sigmoid(D(G(z))) before the D update
    images_per_s: float  # real images consumed per training second
    steps: int  # steps actually run (fewer than asked when diverged)
    seconds: float  # training seconds of this call
    diverged: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1], channels_last (the models' memory format)."""
    x = x.contiguous(memory_format=torch.channels_last)  # reorder the small uint8 tensor, not the float one
    return x.float().div_(127.5).sub_(1.0)


def sample_batch(state: TrainState, data: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """A random batch (with replacement) from the device-resident uint8 set, as float in [-1, 1]."""
    batch_size = batch_size or state.cfg.batch_size
    idx = torch.randint(data.shape[0], (batch_size,), generator=state.batch_gen)  # CPU stream
    return to_float(data[idx.to(data.device, non_blocking=True)])


def gan_step(state: TrainState, real: torch.Tensor) -> torch.Tensor:
    """One D update then one G update on a float batch in [-1, 1]. Returns (loss_d, loss_g, d_real, d_fake) as a
    detached device tensor (no host sync)."""
    G, D, amp = state.G, state.D, autocast(state.device, state.precision)
    z = torch.randn(real.shape[0], state.cfg.nz, 1, 1, device=state.device, generator=state.noise_gen)
    # discriminator: real -> 1, fake -> 0; real and fake go through D as separate batches (separate BN statistics)
    with amp:
        fake = G(z)
        logit_real, logit_fake = D(real), D(fake.detach())
    logit_real, logit_fake = logit_real.float(), logit_fake.float()  # losses in fp32
    loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
              + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    state.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    state.opt_d.step()
    # generator, non-saturating: make the updated D call the same fakes real
    with amp:
        logit_gen = D(fake).float()
    loss_g = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()
    return torch.stack([loss_d.detach(), loss_g.detach(),
                        logit_real.detach().sigmoid().mean(), logit_fake.detach().sigmoid().mean()])


def train_steps(state: TrainState, data: torch.Tensor, n_steps: int, cfg: TrialConfig | None = None, *,
                bar=None) -> StepStats:
    """Run up to `n_steps` steps on `data` (uint8 on the device); stop at once on a non-finite loss.

    `cfg` defaults to the state's config; only its `batch_size` is read here (lr, betas and the model were fixed by
    `build_state`). Never raises on divergence: the stats say `diverged=True` and `state.diverged` is set. `bar`
    (a tqdm bar) is advanced per step if given.
    """
    cfg = cfg or state.cfg
    state.G.train()
    state.D.train()
    check_every = 1 if state.device.type == "cpu" else CUDA_CHECK_EVERY  # CPU: reading a scalar costs nothing
    total = torch.zeros(4, device=state.device)  # running sums of gan_step's four numbers, stay on the device
    done, diverged = 0, False
    t0 = time.perf_counter()
    for i in range(n_steps):
        out = gan_step(state, sample_batch(state, data, cfg.batch_size))
        total += out
        done += 1
        if (i + 1) % check_every == 0 or i + 1 == n_steps:
            if not torch.isfinite(total[:2]).all():  # a NaN/inf in either loss ends training (a host sync)
                diverged = True
                break
        if bar is not None:
            bar.update(1)
    means = (total / max(done, 1)).tolist()  # syncs the device, so the clock below covers all the work
    seconds = time.perf_counter() - t0
    state.step += done
    state.elapsed += seconds
    state.diverged = state.diverged or diverged
    return StepStats(*means, images_per_s=done * cfg.batch_size / max(seconds, 1e-9), steps=done,
                     seconds=seconds, diverged=diverged)


# ---------------------------------------------------------------------------------------------------------------------
# evaluation noise, sampling, grids


def eval_noise(cfg: TrialConfig, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed evaluation noise (n, nz, 1, 1) of `cfg.seed`: drawn on the CPU from its own stream, so it is the
    same on every device, for every checkpoint, and independent of the training RNG streams."""
    g = torch.Generator().manual_seed(_stream_seed(cfg.seed, "eval"))
    return torch.randn(n, cfg.nz, 1, 1, generator=g).to(device)


def generate(G: torch.nn.Module, z: torch.Tensor, batch_size: int = 256, *, precision: str = "fp32") -> torch.Tensor:
    """Images G(z) as uint8 (N, 3, H, W) on the CPU, made in eval mode under inference_mode; G's mode is restored."""
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    out = []
    try:
        with torch.inference_mode(), autocast(device, precision):
            for chunk in z.split(batch_size):
                x = G(chunk.to(device)).float()
                out.append(x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu())  # [-1,1] -> 0..255
    finally:
        G.train(was_training)
    return torch.cat(out).contiguous()  # plain NCHW, whatever G's memory format


def save_grid(images_uint8: torch.Tensor, path, nrow: int | None = None) -> None:
    """A PNG grid of uint8 images (N,3,H,W); `nrow` images per row (default: a near-square grid)."""
    import torchvision.utils as vutils

    nrow = nrow or max(1, math.ceil(math.sqrt(images_uint8.shape[0])))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    vutils.save_image(images_uint8.float().div(255), str(path), nrow=nrow, padding=2)  # save_image rounds back exactly


# ---------------------------------------------------------------------------------------------------------------------
# the local loop


GRID_SAMPLES = 64  # images per sample grid


def train(cfg: TrialConfig, data_uint8, out_dir, *, device: torch.device | None = None, progress: bool = True,
          on_eval: Callable[[TrainState, StepStats], None] | None = None, state: TrainState | None = None
          ) -> TrainState:
    """Train `cfg.steps` steps in chunks of `cfg.eval_every`, writing a sample grid at each chunk end.

    Files in `out_dir`: `samples_step{step:06d}.png` (the fixed eval noise), `log.jsonl` (one StepStats line per
    chunk) and `state.pt` (the final TrainState). Chunk ends fall on multiples of `eval_every`, so a run continued
    from `state` (e.g. `load_state` of an earlier `state.pt`) evaluates at the same steps. Stops early on divergence
    (`state.diverged`), still writing `state.pt`.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = device or (state.device if state is not None else select_device())
    state = state or build_state(cfg, device)
    data = getattr(data_uint8, "images", data_uint8)  # an ImageSet or the tensor itself
    if data.dtype != torch.uint8 or data.ndim != 4 or data.shape[1] != 3:
        raise ValueError(f"training data must be uint8 (N,3,H,W), got {data.dtype} {tuple(data.shape)}")
    if data.shape[-1] != cfg.image_size or data.shape[-2] != cfg.image_size:
        raise ValueError(f"training images are {tuple(data.shape[-2:])}, the config says {cfg.image_size}")
    data = data.to(device)  # the whole set lives on the training device
    z_grid = eval_noise(cfg, GRID_SAMPLES, device)
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train", unit="step", disable=not progress)
    with bar, open(out_dir / "log.jsonl", "a") as log:
        while state.step < cfg.steps and not state.diverged:
            n = min(cfg.eval_every - state.step % cfg.eval_every, cfg.steps - state.step)  # up to the next eval step
            stats = train_steps(state, data, n, bar=bar)
            log.write(json.dumps({"step": state.step, "elapsed": state.elapsed, **stats.as_dict()}) + "\n")
            log.flush()
            if stats.diverged:
                bar.write(f"diverged at step {state.step}: non-finite loss (loss_d={stats.loss_d}, "
                          f"loss_g={stats.loss_g}); stopping")
            else:
                bar.set_postfix(loss_d=f"{stats.loss_d:.3f}", loss_g=f"{stats.loss_g:.3f}",
                                img_s=f"{stats.images_per_s:.0f}")
                save_grid(generate(state.G, z_grid, precision=state.precision),
                          out_dir / f"samples_step{state.step:06d}.png")
            if on_eval is not None:
                on_eval(state, stats)
    save_state(state, out_dir / "state.pt")
    return state
