"""Augmentation at the discriminator's input (`cfg.d_aug`): DiffAugment and ADA, and the EMA generator's update.

Dataset-level DA (`gan.augment`) adds transformed images to the training set, so the generator learns to make them
(the transform "leaks"). Augmenting every image D sees instead, real and generated alike, in both the D and the G
update, leaves the distribution G must match unchanged as long as the augmentation is invertible in distribution
(Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"; Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"). Every op here is differentiable in the image, so
G's gradient flows through it.

    none         D sees the images as they are
    diffaugment  every op of the policy always on (p = 1), Zhao et al.'s `color,translation,cutout` by default
    ada          each op of the policy applied to each image with probability p; p starts at 0 and is moved every
                 `ada_interval` steps by sign(r_t - ada_target) * (batch_size * ada_interval) / ada_images, clamped
                 to [0, 1], where r_t = E[sign D(aug(real))] over those steps (Karras et al.'s overfitting
                 heuristic, target 0.6; `ada_images` images take p from 0 to 1). One p per discriminator.

`OPS` is the registry of ops, `op(x, p, gen) -> x`: x float images in [-1, 1] (B, C, H, W) on the device, p the
probability that an image is transformed (a float or a 0-d tensor), gen the device generator of the trial's "daug"
stream. Each op draws the same random numbers whatever p is (so a run's stream never depends on p), and at p = 0 it
returns x unchanged. DiffAugment's ops follow Zhao et al.'s reference code (brightness +U(-0.5, 0.5), saturation
x U(0, 2), contrast x U(0.5, 1.5); translation by up to 1/8 of the side, zero-padded; cutout of a half-side square);
ADA's follow Karras et al.'s `blit` group (xflip, rotate90, integer translation by up to 1/8, reflected) and part of
its colour group (brightness N(0, 0.2), contrast and saturation log2-normal with sd 0.5 and 1). Deliberately left
out of ADA: the geometric group (arbitrary rotation, scaling, anisotropy; they need resampling filters), lumaflip,
hue rotation, filtering and corruption.

The EMA generator (`cfg.ema` = d > 0): after step t (0-based) every float parameter and buffer of each generator is
moved as ema <- b ema + (1 - b) raw with b = min(d, (1 + t) / (10 + t)), so a short run's average is not dominated
by its random initialisation.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

D_AUG = ("none", "diffaugment", "ada")  # the values of cfg.d_aug
DEFAULT_POLICY = {"diffaugment": "color,translation,cutout",
                  "ada": "xflip,rotate90,xint,brightness,contrast,saturation"}
GEN_NETS = ("G", "G2")  # the generators that get an EMA copy (the SRCNN is a regression, not a player)


def _chance(x: torch.Tensor, p, gen: torch.Generator) -> torch.Tensor:
    """A (B, 1, 1, 1) float mask: 1 where an image is transformed (probability p)."""
    u = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen)
    return (u < p).to(x.dtype)


def _mix(x, y, mask):
    """y where mask is 1, x exactly where it is 0."""
    return x + (y - x) * mask


def _shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Each image moved by whole pixels (dy[b], dx[b], at most `pad` either way); what comes in is zeros (mode
    'zeros') or the image reflected at its border ('reflect'). Shape and dtype kept."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="constant" if mode == "zeros" else "reflect")
    rows = (torch.arange(h, device=x.device)[None] - dy[:, None] + pad)[:, :, None]  # (B, H, 1)
    cols = (torch.arange(w, device=x.device)[None] - dx[:, None] + pad)[:, None, :]  # (B, 1, W)
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).to(x.dtype)


def _translate(x, p, gen, ratio: float, mode: str) -> torch.Tensor:
    """With probability p, a shift by integer offsets uniform in [-s, s] per axis, s = round(side * ratio)."""
    mask = _chance(x, p, gen).flatten().long()
    s = max(int(x.shape[-1] * ratio + 0.5), 1)
    off = torch.randint(-s, s + 1, (2, x.shape[0]), device=x.device, generator=gen) * mask
    return _shift(x, off[0], off[1], s, mode)


# --- DiffAugment (Zhao et al. 2020) ----------------------------------------------------------------------------------

def diff_color(x, p, gen):
    mask = _chance(x, p, gen)
    r = torch.rand(3, x.shape[0], 1, 1, 1, device=x.device, generator=gen, dtype=x.dtype)
    y = x + (r[0] - 0.5)  # brightness
    mean = y.mean(dim=1, keepdim=True)
    y = (y - mean) * (r[1] * 2) + mean  # saturation
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * (r[2] + 0.5) + mean  # contrast
    return _mix(x, y, mask)


def diff_translation(x, p, gen, ratio: float = 0.125):
    return _translate(x, p, gen, ratio, "zeros")


def diff_cutout(x, p, gen, ratio: float = 0.5):
    mask = _chance(x, p, gen)
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device, generator=gen)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy - ch // 2, cx - cw // 2  # the square may reach past the border (then only its inside is cut)
    hole = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (B, H, W)
    hole = hole[:, None].to(x.dtype) * mask
    return x * (1 - hole)


# --- ADA (Karras et al. 2020): the blit group and part of the colour group -------------------------------------------

def ada_xflip(x, p, gen):
    mask = _chance(x, p, gen)
    return _mix(x, x.flip(3), mask)


def ada_rotate90(x, p, gen):
    """Rotation by k x 90 degrees, k uniform in 0..3 (k = 0 included, as in ADA), with probability p."""
    mask = _chance(x, p, gen)
    k = torch.randint(0, 4, (x.shape[0], 1, 1, 1), device=x.device, generator=gen)
    out = x
    for turns in (1, 2, 3):
        out = _mix(out, torch.rot90(x, turns, dims=(2, 3)), mask * (k == turns).to(x.dtype))
    return out


def ada_xint(x, p, gen, ratio: float = 0.125):
    return _translate(x, p, gen, ratio, "reflect")


def ada_brightness(x, p, gen, std: float = 0.2):
    mask = _chance(x, p, gen)
    return x + torch.randn(x.shape[0], 1, 1, 1, device=x.device, generator=gen, dtype=x.dtype) * std * mask


def _log2_scaled(x, p, gen, std, dims) -> torch.Tensor:
    """With probability p, x scaled around its mean over `dims` by 2 ** N(0, std)."""
    mask = _chance(x, p, gen)
    scale = torch.exp2(torch.randn(x.shape[0], 1, 1, 1, device=x.device, generator=gen, dtype=x.dtype) * std)
    mean = x.mean(dim=dims, keepdim=True)
    return _mix(x, (x - mean) * scale + mean, mask)


def ada_contrast(x, p, gen, std: float = 0.5):
    return _log2_scaled(x, p, gen, std, (1, 2, 3))


def ada_saturation(x, p, gen, std: float = 1.0):
    return _log2_scaled(x, p, gen, std, (1,))  # around each pixel's grey value (the channel mean)


OPS: dict[str, Callable] = {
    "color": diff_color, "translation": diff_translation, "cutout": diff_cutout,
    "xflip": ada_xflip, "rotate90": ada_rotate90, "xint": ada_xint,
    "brightness": ada_brightness, "contrast": ada_contrast, "saturation": ada_saturation,
}


def parse_policy(mode: str, policy: str) -> tuple[str, ...]:
    """The ops of a `d_aug` mode's policy string ('' = `DEFAULT_POLICY[mode]`), in order. ValueError (one line) on
    an unknown mode or op."""
    if mode not in D_AUG:
        raise ValueError(f"d_aug {mode!r} is unknown; allowed: {', '.join(D_AUG)}")
    if mode == "none":
        if policy:
            raise ValueError(f"d_aug_policy {policy!r} needs d_aug diffaugment or ada, got d_aug none")
        return ()
    ops = tuple(o.strip() for o in (policy or DEFAULT_POLICY[mode]).split(",") if o.strip())
    bad = [o for o in ops if o not in OPS]
    if bad or not ops:
        raise ValueError(f"d_aug_policy {policy!r}: unknown op(s) {', '.join(bad) or '(none given)'}; "
                         f"allowed: {', '.join(OPS)} (comma-separated)")
    return ops


def apply_ops(x: torch.Tensor, ops, p, gen: torch.Generator) -> torch.Tensor:
    """x through every op in order, each image of each op transformed with probability p."""
    for name in ops:
        x = OPS[name](x, p, gen)
    return x


class DAug:
    """The discriminator-input augmentation of one trial, and ADA's adaptive state (one p per discriminator).

    `__call__(x, d, gen)` augments a batch for discriminator `d`; `observe(d, logits)` feeds ADA the logits of D on
    an augmented real batch, once per step, and adjusts p every `ada_interval` observations. Everything stays on
    the device (no host sync). `state_dict()` holds p and the part-filled interval, so a resume is exact.
    """

    def __init__(self, cfg, discriminators, device: torch.device):
        self.mode, self.ops = cfg.d_aug, parse_policy(cfg.d_aug, cfg.d_aug_policy)
        self.target, self.interval = cfg.ada_target, cfg.ada_interval
        self.speed = cfg.batch_size * cfg.ada_interval / cfg.ada_images  # p's step per adjustment
        self.p = {d: torch.zeros((), device=device) for d in discriminators}
        self.signs = {d: torch.zeros((), device=device) for d in discriminators}  # sum of sign(D(real)) so far
        self.seen = {d: 0 for d in discriminators}  # real logits summed into `signs` (this interval)
        self.batches = {d: 0 for d in discriminators}  # observations this interval
        self.last_rt = {d: torch.zeros((), device=device) for d in discriminators}

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def __call__(self, x: torch.Tensor, d: str, gen: torch.Generator) -> torch.Tensor:
        if self.mode == "none":
            return x
        return apply_ops(x, self.ops, self.p[d] if self.mode == "ada" else 1.0, gen)

    def observe(self, d: str, logits_real: torch.Tensor) -> None:
        if self.mode != "ada":
            return
        self.signs[d] = self.signs[d] + logits_real.detach().float().sign().sum()
        self.seen[d] += logits_real.numel()
        self.batches[d] += 1
        if self.batches[d] == self.interval:
            rt = self.signs[d] / self.seen[d]
            self.p[d] = (self.p[d] + torch.sign(rt - self.target) * self.speed).clamp(0.0, 1.0)
            self.last_rt[d] = rt
            self.signs[d], self.seen[d], self.batches[d] = torch.zeros_like(self.signs[d]), 0, 0

    def stats(self) -> dict[str, float]:
        """ADA's p and last r_t per discriminator ('ada_p', 'ada_rt'; 'ada_p_D2', ... for the others); {} else."""
        if self.mode != "ada":
            return {}
        out = {}
        for d in self.p:
            tail = "" if d == "D" else f"_{d}"
            out[f"ada_p{tail}"], out[f"ada_rt{tail}"] = float(self.p[d]), float(self.last_rt[d])
        return out

    def state_dict(self) -> dict:
        return {d: {"p": self.p[d].cpu(), "signs": self.signs[d].cpu(), "seen": self.seen[d],
                    "batches": self.batches[d], "last_rt": self.last_rt[d].cpu()} for d in self.p}

    def load_state_dict(self, sd: dict) -> None:
        for d, s in sd.items():
            device = self.p[d].device
            self.p[d], self.signs[d] = s["p"].to(device), s["signs"].to(device)
            self.last_rt[d] = s["last_rt"].to(device)
            self.seen[d], self.batches[d] = int(s["seen"]), int(s["batches"])


# --- the EMA generator -----------------------------------------------------------------------------------------------

def ema_decay(decay: float, step: int) -> float:
    """The EMA's decay after step `step` (0-based): min(decay, (1 + step) / (10 + step))."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, raw: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * raw for every float parameter and buffer; other buffers are copied."""
    for e, r in zip(ema.parameters(), raw.parameters()):
        e.lerp_(r, 1.0 - beta)
    for e, r in zip(ema.buffers(), raw.buffers()):
        if e.is_floating_point():
            e.lerp_(r, 1.0 - beta)
        else:
            e.copy_(r)


def ema_copy(net: nn.Module) -> nn.Module:
    """A frozen copy of a generator to average into."""
    import copy

    twin = copy.deepcopy(net)
    twin.requires_grad_(False)
    return twin

