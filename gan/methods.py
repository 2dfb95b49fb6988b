"""Study 2's ways to a 128x128 image: the method registry, the training data each needs, and the SRCNN check.

`METHODS` maps the label used everywhere (search space, MLflow param, report) to a `Method`:

    dcgan32, dcgan64, dcgan128  one DCGAN at that size; samples are brought to the evaluation size with `to_size`
    stackgan128                 method A: stage I a 64x64 DCGAN, stage II refines to 128x128 (gan.models.stackgan)
    dcgan64+srcnn               method B: a 64x64 DCGAN whose samples an SRCNN upscales x2 (gan.models.srcnn)

What one *iteration* is: one update of every adversarial network (D then G of each pair), so an iteration budget
(`steps`) means the same for every method: a DCGAN step; for stackgan128 a stage-I and a stage-II step on the same
real batch (both stages jointly, stage II on the detached stage-I images; the reasons are in gan.models.stackgan).
dcgan64+srcnn first trains its SRCNN for `srcnn_steps` iterations of its own (it needs only real images), counted
apart in `sr_step`; its seconds count in the trial's training time, so an equal-time budget pays for them.

Seeds: every method builds its first (G, D) from the trial seed exactly as a DCGAN of that size would, and draws
batch indices and noise from the same named streams; stage II and the SRCNN start from streams of their own. So with
one seed, stackgan128's stage I and dcgan64+srcnn's GAN follow dcgan64 step for step, and the methods differ only in
what they add.

The one fixed resize is `gan.realsets.to_size` (`RESIZE` names it): bicubic with antialiasing, rounded to uint8. It
makes every method's training set from the one 128x128 real set (`prepare_data`, once), SRCNN's bicubic input, and
brings 32x32 and 64x64 samples to the evaluation size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from gan.models.dcgan import build_dcgan
from gan.models.srcnn import SCALE, build_srcnn
from gan.models.stackgan import STAGE1_SIZE, STAGE2_SIZE, build_stage2
from gan.runtime import autocast
from gan.realsets import RESIZE, to_size
from gan.steps import (GAN_STATS, adversarial_update, dcgan_update, draw_indices, draw_noise, gan_step,
                       sample_batch, stream_seed, to_float, to_uint8)

__all__ = ["METHODS", "Method", "RESIZE", "TrainData", "build_networks", "get_method", "is_grey", "match_grey",
           "method_of", "prepare_data",
           "srcnn_quality", "to_size", "upscale"]

SR_LOW = 64  # SRCNN's input size: the size of method B's GAN
SR_HIGH = SR_LOW * SCALE  # and its output size


@dataclass(frozen=True)
class TrainData:
    """A method's training set, uint8 on the training device, made once before training (`prepare_data`)."""

    images: dict[int, torch.Tensor]  # side -> the training images at that size (N, 3, side, side), same N and order
    sr_input: torch.Tensor | None = None  # SRCNN's input: images[64] brought to 128 by to_size (target: images[128])


@dataclass(frozen=True)
class Method:
    """One way to a high-resolution image: what it trains on, what it outputs, how it is built, stepped, sampled."""

    name: str
    train_sizes: tuple[int, ...]  # sides of the real images its networks train on (the sizes of TrainData.images)
    output_size: int  # side of the images `sample` returns
    nets: Callable  # cfg -> {name: freshly initialised network}; torch's global RNG seeded by the caller
    step: Callable  # (state, TrainData) -> one iteration's statistics (detached device tensor, named by `stats`)
    sample: Callable  # (nets, z) -> uint8 images (B, 3, output_size, output_size); eval mode set by the caller
    about: str  # one line for reports
    stats: tuple[str, ...] = GAN_STATS  # names of `step`'s values; those starting with "loss" are checked for NaN
    srcnn: bool = False  # has an SRCNN phase (`srcnn_steps` iterations of nets["SR"] before the GAN's)


# ---------------------------------------------------------------------------------------------------------------------
# builders, steps and samplers


def _dcgan_nets(size: int) -> Callable:
    def nets(cfg) -> dict[str, nn.Module]:
        G, D = build_dcgan(size, cfg.nz, cfg.g_width, cfg.d_width)
        return {"G": G, "D": D}
    return nets


def _dcgan_step(size: int) -> Callable:
    def step(state, data: TrainData) -> torch.Tensor:
        return gan_step(state, sample_batch(state, data.images[size]))
    return step


def _dcgan_sample(nets, z: torch.Tensor) -> torch.Tensor:
    return to_uint8(nets["G"](z))


def _stackgan_nets(cfg) -> dict[str, nn.Module]:
    nets = _dcgan_nets(STAGE1_SIZE)(cfg)  # stage I: the 64x64 DCGAN, from the trial seed
    torch.manual_seed(stream_seed(cfg.seed, "init:stage2"))
    nets["G2"], nets["D2"] = build_stage2(cfg.nz, cfg.g_width, cfg.d_width)
    return nets


def _stackgan_step(state, data: TrainData) -> torch.Tensor:
    """Stage I's DCGAN update, then stage II's update on the same real batch at 128 and on stage I's (detached)
    images of this iteration, refined with the same z. Returns stage I's four statistics, then stage II's."""
    low, high = data.images[STAGE1_SIZE], data.images[STAGE2_SIZE]
    idx = draw_indices(state, low.shape[0]).to(low.device, non_blocking=True)
    real_low, real_high = to_float(low[idx]), to_float(high[idx])
    z = draw_noise(state, idx.shape[0])
    image1, stage1 = dcgan_update(state, real_low, z)  # image1 is detached: no stage-II gradient reaches G1
    with autocast(state.device, state.precision):
        image2 = state.nets["G2"](image1, z)
    stage2 = adversarial_update(state, "G2", "D2", real_high, image2)
    return torch.cat([stage1, stage2])


def _stackgan_sample(nets, z: torch.Tensor) -> torch.Tensor:
    return to_uint8(nets["G2"](nets["G"](z), z))


def _srcnn_nets(cfg) -> dict[str, nn.Module]:
    nets = _dcgan_nets(SR_LOW)(cfg)
    torch.manual_seed(stream_seed(cfg.seed, "init:srcnn"))
    nets["SR"] = build_srcnn()
    return nets


def _srcnn_sample(nets, z: torch.Tensor) -> torch.Tensor:
    """G's 64x64 samples rounded to uint8 (as saved images would be), then upscaled by the SRCNN."""
    return upscale(nets["SR"], to_uint8(nets["G"](z)))


def upscale(sr: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, 64, 64) -> uint8 (B, 3, 128, 128): the fixed bicubic resize, then the SRCNN's restoration.
    Runs in the caller's grad/autocast/eval context, on the SRCNN's device."""
    device = next(sr.parameters()).device
    return to_uint8(sr(to_float(to_size(images, SR_HIGH).to(device))))


METHODS: dict[str, Method] = {
    **{f"dcgan{s}": Method(f"dcgan{s}", (s,), s, _dcgan_nets(s), _dcgan_step(s), _dcgan_sample,
                           f"a DCGAN at {s}x{s}") for s in (32, 64, 128)},
    "stackgan128": Method("stackgan128", (STAGE1_SIZE, STAGE2_SIZE), STAGE2_SIZE, _stackgan_nets, _stackgan_step,
                          _stackgan_sample, "method A: 2-stage GAN, stage I 64x64, stage II refines to 128x128",
                          stats=GAN_STATS + tuple(f"{k}2" for k in GAN_STATS)),
    "dcgan64+srcnn": Method("dcgan64+srcnn", (SR_LOW, SR_HIGH), SR_HIGH, _srcnn_nets, _dcgan_step(SR_LOW),
                            _srcnn_sample, "method B: a DCGAN at 64x64, its samples upscaled x2 by an SRCNN",
                            srcnn=True),
}


def get_method(name: str) -> Method:
    """METHODS[name]; an unknown name is a ValueError listing the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
    return METHODS[name]


def method_of(cfg) -> Method:
    """The method a TrialConfig trains: its `method`, or for a study-1 trial (method "") the DCGAN at image_size."""
    return get_method(cfg.method or f"dcgan{cfg.image_size}")


def build_networks(cfg, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
    """Fresh networks of cfg's method on `device` (channels_last) and one Adam per network, same keys. The first
    (G, D) start from torch's global RNG seeded with cfg.seed, as a DCGAN of that size always has; the GAN networks
    use (lr, beta1, beta2); the SRCNN its own groups (`SRCNN.param_groups`) with Adam's default betas (a
    regression, not a game), its rate set per iteration by `gan.steps.srcnn_update`."""
    torch.manual_seed(cfg.seed)  # global CPU (and CUDA) RNG: drives the weight init
    nets = {name: net.to(device, memory_format=torch.channels_last)  # NHWC convs: faster with oneDNN and cuDNN
            for name, net in method_of(cfg).nets(cfg).items()}
    opts = {name: (torch.optim.Adam(net.param_groups(), lr=cfg.srcnn_lr) if name == "SR" else
                   torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)))
            for name, net in nets.items()}
    return nets, opts


def is_grey(images: torch.Tensor) -> bool:
    """Whether uint8 images (N, 3, H, W) are grey: all three channels equal in every pixel."""
    return bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())


def match_grey(nets: dict[str, nn.Module], images: torch.Tensor) -> None:
    """Grey data stays grey: every generator with a `grey` flag (`gan.models.dcgan.Generator`) outputs grey exactly
    when its training images are grey, so colour noise a generator invents can dominate no score."""
    grey = is_grey(images)
    for net in nets.values():
        if isinstance(getattr(net, "grey", None), torch.Tensor):
            net.grey.fill_(grey)


def prepare_data(images: torch.Tensor, cfg, device: torch.device | str) -> TrainData:
    """The training set of cfg's method on `device`, from uint8 images (N, 3, S, S) at cfg.image_size.

    A study-1 trial (method "") trains on `images` as they are. A method trial gets `images` (the real set at the
    evaluation size) brought by `to_size` to every size it trains at, and method B also SRCNN's bicubic input; all
    made here once, never per step.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"training data must be uint8 (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
    if tuple(images.shape[-2:]) != (cfg.image_size, cfg.image_size):
        raise ValueError(f"training images are {tuple(images.shape[-2:])}, the config says {cfg.image_size}")
    method = method_of(cfg)
    sized = {s: to_size(images, s).to(device) for s in method.train_sizes}
    sr_input = to_size(to_size(images, SR_LOW), SR_HIGH).to(device) if method.srcnn else None
    return TrainData(sized, sr_input)


# ---------------------------------------------------------------------------------------------------------------------
# SRCNN quality


def srcnn_quality(sr: nn.Module, heldout: torch.Tensor, *, batch_size: int = 64) -> dict[str, float]:
    """How well an SRCNN restores real images it never saw, against plain bicubic.

    `heldout`: uint8 (N, 3, 128, 128) real images. Each is brought to 64x64 with `to_size`, then back to 128x128
    twice: by `to_size` alone (bicubic) and by `upscale` (bicubic + SRCNN). Returns the means over images of
    scikit-image's PSNR (dB, data range 255) and SSIM (colour, data range 255) against the original:
    {psnr_srcnn, psnr_bicubic, ssim_srcnn, ssim_bicubic}. Higher is better for all four. Runs in fp32, eval mode.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if heldout.dtype != torch.uint8 or tuple(heldout.shape[1:]) != (3, SR_HIGH, SR_HIGH):
        raise ValueError(f"held-out images must be uint8 (N,3,{SR_HIGH},{SR_HIGH}), got {heldout.dtype} "
                         f"{tuple(heldout.shape)}")
    if heldout.shape[0] == 0:
        raise ValueError("no held-out images to score the SRCNN on")
    low = to_size(heldout.cpu(), SR_LOW)
    was_training = sr.training
    sr.eval()
    try:
        with torch.inference_mode():
            restored = torch.cat([upscale(sr, chunk).cpu() for chunk in low.split(batch_size)])
    finally:
        sr.train(was_training)
    candidates = {"srcnn": restored, "bicubic": to_size(low, SR_HIGH)}
    truth = heldout.cpu().permute(0, 2, 3, 1).numpy()  # (N, H, W, C) for scikit-image
    out = {}
    for name, images in candidates.items():
        pred = images.permute(0, 2, 3, 1).numpy()
        out[f"psnr_{name}"] = float(sum(peak_signal_noise_ratio(t, p, data_range=255) for t, p in zip(truth, pred))
                                    / len(truth))
        out[f"ssim_{name}"] = float(sum(structural_similarity(t, p, data_range=255, channel_axis=-1)
                                        for t, p in zip(truth, pred)) / len(truth))
    return {k: out[k] for k in ("psnr_srcnn", "psnr_bicubic", "ssim_srcnn", "ssim_bicubic")}
