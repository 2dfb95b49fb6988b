"""The updates every method is made of: drawing batches, one adversarial update of a (G, D) pair, one SRCNN update.

Each function takes a training state (`gan.checkpoint.TrainState`: `nets` and `opts` by name, `gens` the named RNG
streams, `cfg`, `device`, `precision`) and returns its statistics as a detached tensor on the device (no host sync).
RNG streams are seeded by name from the trial seed (`stream_seed`): "batch" (CPU: batch indices), "noise" (on the
device: training z), "daug" (on the device: augmentation at D's input) and "sr" (CPU: SRCNN crops), so adding a network or a phase never shifts another's draws.

The adversarial update is the non-saturating GAN loss (Goodfellow et al. 2014, as in DCGAN): one discriminator
update, then one generator update against the updated discriminator,

    loss_d = BCE(D(x), 1) + BCE(D(G(z)), 0)        loss_g = BCE(D(G(z)), 1)

with real and fake images through D as separate batches (separate BatchNorm statistics) and the losses in fp32.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

from gan.runtime import autocast

GAN_STATS = ("loss_d", "loss_g", "d_real", "d_fake")  # what `adversarial_update` returns, in this order


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one named RNG stream, so the streams of one trial seed are independent of each other."""
    digest = hashlib.sha256(f"gansweep:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1], channels_last (the models' memory format)."""
    x = x.contiguous(memory_format=torch.channels_last)  # reorder the small uint8 tensor, not the float one
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] (any dtype) -> uint8 0..255, rounded and clamped; plain NCHW."""
    return x.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).contiguous()


def draw_indices(state, n: int, batch_size: int | None = None) -> torch.Tensor:
    """A random index batch (with replacement) into a set of `n` images, from the CPU `batch` stream."""
    return torch.randint(n, (batch_size or state.cfg.batch_size,), generator=state.gens["batch"])


def sample_batch(state, data: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """A random batch (with replacement) from the device-resident uint8 set, as float in [-1, 1]."""
    idx = draw_indices(state, data.shape[0], batch_size)
    return to_float(data[idx.to(data.device, non_blocking=True)])


def draw_noise(state, batch_size: int) -> torch.Tensor:
    """Training noise z (batch_size, nz, 1, 1) from the device `noise` stream."""
    return torch.randn(batch_size, state.cfg.nz, 1, 1, device=state.device, generator=state.gens["noise"])


def adversarial_update(state, g: str, d: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """One update of D = nets[d] then of G = nets[g], given a real batch and G's fakes (still attached to G's graph).
    Every batch D sees goes through the trial's augmentation at D's input (`state.daug`, `gan.daug`; the identity
    for d_aug none), real and fake, in both updates, with fresh draws from the device "daug" stream each time.
    Returns (loss_d, loss_g, d_real, d_fake) as one detached device tensor; d_fake is D's view before its update."""
    D, opt_d, opt_g = state.nets[d], state.opts[d], state.opts[g]
    aug, gen = state.daug, state.gens["daug"]
    amp = autocast(state.device, state.precision)
    with amp:
        logit_real, logit_fake = D(aug(real, d, gen)), D(aug(fake.detach(), d, gen))
    logit_real, logit_fake = logit_real.float(), logit_fake.float()  # losses in fp32
    aug.observe(d, logit_real)  # ADA: r_t from D's view of the augmented real batch
    loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
              + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    # generator, non-saturating: make the updated D call the same fakes real
    with amp:
        logit_gen = D(aug(fake, d, gen)).float()
    loss_g = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return torch.stack([loss_d.detach(), loss_g.detach(),
                        logit_real.detach().sigmoid().mean(), logit_fake.detach().sigmoid().mean()])


def gan_step(state, real: torch.Tensor) -> torch.Tensor:
    """One DCGAN iteration on a float batch in [-1, 1]: z from the noise stream, one D then one G update of
    nets["G"], nets["D"]. Returns (loss_d, loss_g, d_real, d_fake) as a detached device tensor."""
    return dcgan_update(state, real, draw_noise(state, real.shape[0]))[1]


def dcgan_update(state, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """G(z), then `adversarial_update` of (G, D). Returns (G's fakes, detached from the graph; the statistics)."""
    with autocast(state.device, state.precision):
        fake = state.nets["G"](z)
    stats = adversarial_update(state, "G", "D", real, fake)
    return fake.detach(), stats


# ---------------------------------------------------------------------------------------------------------------------
# SRCNN


def random_crops(state, images: torch.Tensor, targets: torch.Tensor, side: int, batch_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random side x side crops, the same window of `images` and `targets` (uint8 sets of one size, on
    the device), from the CPU `sr` stream: image index, then top, then left. Returns both as float in [-1, 1]."""
    gen, (n, _, h, w) = state.gens["sr"], images.shape
    idx = torch.randint(n, (batch_size,), generator=gen)
    top = torch.randint(h - side + 1, (batch_size,), generator=gen)
    left = torch.randint(w - side + 1, (batch_size,), generator=gen)
    span = torch.arange(side)
    rows, cols = (top[:, None] + span)[:, :, None], (left[:, None] + span)[:, None, :]  # (B, side, 1), (B, 1, side)
    where = [t.to(images.device, non_blocking=True) for t in (idx[:, None, None], rows, cols)]

    def crop(x):  # advanced indices on N, H, W around the channel slice -> (B, side, side, C)
        return to_float(x[where[0], :, where[1], where[2]].permute(0, 3, 1, 2))

    return crop(images), crop(targets)


def srcnn_lr(base: float, iteration: int, total: int) -> float:
    """The SRCNN's learning rate at `iteration` of `total`: a cosine from `base` down to 0 (a function of the
    iteration counter alone, so a resumed run follows the same schedule without saving any)."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / total))


def srcnn_update(state, upscaled: torch.Tensor, target: torch.Tensor, iteration: int) -> torch.Tensor:
    """SRCNN iteration `iteration` (0-based): one Adam update of nets["SR"] on the mean squared error (fp32) between
    SR(upscaled) and target (float in [-1, 1]), each parameter group at `srcnn_lr(...)` times its `lr_scale`.
    Returns the loss as a detached 1-element device tensor."""
    opt, cfg = state.opts["SR"], state.cfg
    lr = srcnn_lr(cfg.srcnn_lr, iteration, cfg.srcnn_steps)
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_scale"]
    with autocast(state.device, state.precision):
        restored = state.nets["SR"](upscaled)
    loss = F.mse_loss(restored.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach().reshape(1)
