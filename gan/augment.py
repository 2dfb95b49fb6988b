"""Dataset-level data augmentation (DA): the registry of ops and the composer that builds a training set.

As in the study, augmentation happens once, before training: the composer materialises `n_aug` augmented images
from the real set, deterministically from a seed, and training then samples from the fixed set of
`n_real + n_aug` images. Every image keeps its provenance (`source`, `da_type`, `index`).

Each op maps a uint8 batch (n,3,H,W) to a uint8 batch of the same shape and takes an explicit `torch.Generator`
(only `contrast` draws from it). `generated` does not transform its input: it takes `n` images from a supplied
tensor of GAN samples (the sweep trains that donor GAN on the real set first).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from gan.imagetable import ImageSet

NONE = "none"  # the DA label of "no augmentation": the study-1 baseline arm


def parse_da(value) -> tuple[str, ...]:
    """'hflip+contrast' / ['hflip', 'contrast'] / 'none' / () / None -> ('hflip', 'contrast') or ()."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p.strip() for p in value.split("+") if p.strip()]
    else:
        parts = [str(p).strip() for p in value]
    if parts in ([NONE], ["None"]):
        return ()
    return tuple(parts)


def da_label(da) -> str:
    """The DA key used everywhere outside the dataclass: 'none', 'hflip', 'hflip+generated'."""
    da = parse_da(da)
    return "+".join(da) if da else NONE


def arm_label(da, n_aug: int, pair_ratio: float = 0.5) -> str:
    """The label of a DA-ablation arm: 'none', 'hflip@100', 'contrast+hflip@200', 'contrast+hflip:0.25@200'.

    The ratio shows only for a pair mixed other than 1:1.
    """
    da = parse_da(da)
    if not da:
        return NONE
    ratio = "" if len(da) == 1 or pair_ratio == 0.5 else f":{pair_ratio:g}"
    return f"{da_label(da)}{ratio}@{n_aug}"


# contrast factors are drawn per image from [1 - HI, 1 - LO] U [1 + LO, 1 + HI]: always a visible change, never 1.
CONTRAST_LO, CONTRAST_HI = 0.2, 0.6
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma weights of R, G, B (sum to 1: a grey pixel's luma is its value)


def adjust_contrast(x: torch.Tensor, factors) -> torch.Tensor:
    """Contrast change of uint8 images (n, 3, H, W): round(f * x + (1 - f) * m), clamped to 0..255.

    ``m`` is the image's mean grey level, the mean of its ITU-R 601-2 luma (the grey torchvision's adjust_contrast
    blends with), and ``f`` its factor (one number, or one per image). The blend is done in float32 and rounded, so
    f = 1 returns the input exactly and the mean grey level stays put up to rounding and clamping. torchvision's
    uint8 path differs in three ways that all darken: it truncates the blend to uint8 instead of rounding (0.5 grey
    levels on average), floors each pixel's luma before taking the mean, and uses 0.2989 for red (weights summing to
    0.9999).
    """
    if not (x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
        raise ValueError(f"contrast takes uint8 images (n, 3, H, W), got {x.dtype} {tuple(x.shape)}")
    f = torch.as_tensor(factors, dtype=torch.float32).reshape(-1, 1, 1, 1)
    if (f < 0).any():
        raise ValueError("contrast factors must be >= 0")
    xf = x.float()
    weights = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    grey = (xf * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)  # (n, 1, 1, 1)
    return (f * xf + (1 - f) * grey).round_().clamp_(0, 255).to(torch.uint8)


def contrast(x: torch.Tensor, g: torch.Generator, **_) -> torch.Tensor:
    """Contrast change (`adjust_contrast`: blend with the image's mean grey level, in float, rounded).

    The factor is drawn per image uniformly from [0.4, 0.8] U [1.2, 1.6], so it is never 1 (a no-op) and lowering
    and raising contrast are equally likely.
    """
    n = x.shape[0]
    magnitude = CONTRAST_LO + (CONTRAST_HI - CONTRAST_LO) * torch.rand(n, generator=g)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    factors = 1.0 + sign * magnitude
    return adjust_contrast(x, factors) if n else x.clone()


def negpos(x: torch.Tensor, g: torch.Generator, **_) -> torch.Tensor:
    """Negative/positive inversion: 255 - x."""
    return 255 - x


def hflip(x: torch.Tensor, g: torch.Generator, **_) -> torch.Tensor:
    """Horizontal (left-right) flip."""
    return x.flip(-1)


def vflip(x: torch.Tensor, g: torch.Generator, **_) -> torch.Tensor:
    """Vertical (upside-down) flip."""
    return x.flip(-2)


def generated(x: torch.Tensor, g: torch.Generator, *, samples: torch.Tensor | None = None,
              sample_index: torch.Tensor | None = None, **_) -> torch.Tensor:
    """Images sampled from a donor GAN trained on the real set; `x` only fixes how many.

    `sample_index` (chosen by the composer) says which donor samples to take; by default the first `len(x)`.
    """
    if samples is None:
        raise ValueError("DA 'generated' needs donor GAN samples (the sweep trains the donor; "
                         "on the command line pass --generated FILE.parquet)")
    if sample_index is None:
        sample_index = torch.arange(x.shape[0])
    out = samples[sample_index]
    if out.shape[1:] != x.shape[1:]:
        raise ValueError(f"donor samples are {tuple(out.shape[1:])}, the real images {tuple(x.shape[1:])}; "
                         "sample the donor at the training image size")
    return out.to(torch.uint8)


AUGMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "contrast": contrast,
    "negpos": negpos,
    "hflip": hflip,
    "vflip": vflip,
    "generated": generated,
}

# Ops whose output is a fixed function of the base image: they can make at most n_real distinct images.
DETERMINISTIC = frozenset({"negpos", "hflip", "vflip"})


def split_counts(da: Sequence[str], n_aug: int, pair_ratio: float = 0.5) -> list[tuple[str, int]]:
    """How many images each DA type contributes.

    One type gets all `n_aug`. A pair gets `round(n_aug * pair_ratio)` for the first type (halves round up, so the
    split is the same on every platform) and the remainder for the second; the counts always sum to `n_aug`.
    """
    da = parse_da(da)
    if not da:
        return []
    if len(da) == 1:
        return [(da[0], n_aug)]
    first = int(n_aug * pair_ratio + 0.5)
    return [(da[0], first), (da[1], n_aug - first)]


def check_da(da, *, n_real: int, n_aug: int, pair_ratio: float = 0.5, allow_repeats: bool = False,
             n_generated: int | None = None) -> None:
    """Validate a DA request without touching data. Raises ValueError with one line saying what is allowed."""
    da = parse_da(da)
    allowed = ", ".join([NONE, *AUGMENTATIONS])
    for name in da:
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown DA type {name!r}; allowed: {allowed} (pair two with '+', e.g. hflip+contrast)")
    if len(da) > 2:
        raise ValueError(f"at most two DA types can be paired, got {len(da)}: {'+'.join(da)}")
    if len(da) == 2 and da[0] == da[1]:
        raise ValueError(f"a pairing needs two different DA types, got {da[0]}+{da[1]}")
    if isinstance(n_real, bool) or int(n_real) != n_real or n_real < 1:
        raise ValueError(f"n_real must be a positive integer, got {n_real}")
    if isinstance(n_aug, bool) or int(n_aug) != n_aug or n_aug < 0:
        raise ValueError(f"n_aug must be a non-negative integer, got {n_aug}")
    if not 0.0 <= float(pair_ratio) <= 1.0:
        raise ValueError(f"pair_ratio must be in [0, 1] (0.5 = 1:1), got {pair_ratio}")
    if not da and n_aug:
        raise ValueError(f"n_aug={n_aug} but no DA type was given; use n_aug=0 with da=none")
    if da and not n_aug:
        raise ValueError(f"DA {'+'.join(da)} needs n_aug > 0")
    for name, count in split_counts(da, n_aug, pair_ratio):
        if name in DETERMINISTIC and count > n_real and not allow_repeats:
            raise ValueError(f"{name} can make at most n_real={n_real} distinct images but {count} were asked for; "
                             "lower n_aug or pass allow_repeats")
        if name == "generated" and n_generated is not None and count > n_generated:
            raise ValueError(f"generated DA needs {count} donor samples but only {n_generated} were supplied")


def _base_indices(n_real: int, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` indices into the real set, without replacement; cycles through fresh permutations past n_real."""
    chunks, left = [], count
    while left > 0:
        perm = torch.randperm(n_real, generator=g)
        chunks.append(perm[:left])
        left -= len(chunks[-1])
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)


def compose(real: ImageSet, da, n_aug: int, *, pair_ratio: float = 0.5, seed: int = 0,
            generated: torch.Tensor | None = None, allow_repeats: bool = False) -> ImageSet:
    """The training set: all real images, then `n_aug` augmented ones, with provenance.

    Deterministic in `seed`: the same inputs give the same set bit for bit. Each DA type draws its own base images
    without replacement (cycling only past n_real); `generated` takes distinct donor samples in a seeded order, and
    its `index` column is the donor sample's index.
    """
    da = parse_da(da)
    n_real = len(real)
    check_da(da, n_real=n_real, n_aug=n_aug, pair_ratio=pair_ratio, allow_repeats=allow_repeats,
             n_generated=None if generated is None else int(generated.shape[0]))
    g = torch.Generator().manual_seed(int(seed))
    images, source, da_type, index = [real.images], list(real.source), list(real.da_type), list(real.index)
    for name, count in split_counts(da, n_aug, pair_ratio):
        if count == 0:
            continue
        if name == "generated":
            if generated is None:
                AUGMENTATIONS[name](real.images[:count], g)  # raises the explanatory error
            idx = torch.randperm(generated.shape[0], generator=g)[:count]
            out = AUGMENTATIONS[name](real.images[:1].expand(count, -1, -1, -1), g, samples=generated,
                                      sample_index=idx)
        else:
            idx = _base_indices(n_real, count, g)
            out = AUGMENTATIONS[name](real.images[idx], g)
            idx = torch.as_tensor([real.index[i] for i in idx.tolist()])
        images.append(out)
        source += ["aug"] * count
        da_type += [name] * count
        index += idx.tolist()
    return ImageSet(images=torch.cat(images).contiguous(), source=tuple(source), da_type=tuple(da_type),
                    index=tuple(int(i) for i in index))
