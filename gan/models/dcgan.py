"""DCGAN (Radford, Metz & Chintala 2015) for 32, 64 and 128 pixel images, in one short file.

Generator: z (nz,1,1) -> transposed conv to 4x4 -> stride-2 transposed convs that double the size and halve the
width -> 3 channels through Tanh. Every hidden layer is ConvTranspose + BatchNorm + ReLU.
Discriminator: the mirror image with strided convs + BatchNorm + LeakyReLU(0.2), no BatchNorm on the first layer,
and a final 4x4 conv to one logit per image.

The number of up/down blocks follows from the image size: log2(size) - 3 hidden stride-2 layers, so 64x64 is the
paper's network (ngf*8 at 4x4 ... ngf at 32x32), 32x32 drops the widest block and 128x128 adds one (ngf*16 at 4x4).
Convs have no bias (BatchNorm follows them, as in the paper). Weights are drawn from N(0, 0.02), BatchNorm scales
from N(1, 0.02) with zero shifts.

A generator trained on a grey set outputs grey (the `grey` buffer). Deliberately left out: spectral norm, self-attention, conditional inputs, progressive growing.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _n_blocks(image_size: int) -> int:
    """Hidden stride-2 layers between 4x4 and the image: 2 for 32, 3 for 64, 4 for 128."""
    n = int(math.log2(image_size)) - 3
    if image_size != 2 ** (n + 3) or n < 1:
        raise ValueError(f"DCGAN image_size must be a power of two >= 16, got {image_size}")
    return n


class Generator(nn.Module):
    def __init__(self, image_size: int = 64, nz: int = 100, ngf: int = 64):
        super().__init__()
        n = _n_blocks(image_size)
        width = ngf * 2 ** n  # widest layer, at 4x4; halves at every doubling of the size
        layers = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False),  # (nz,1,1) -> (width,4,4)
                  nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(n):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),  # doubles H and W
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh()]  # last doubling, to RGB in [-1,1]
        self.net = nn.Sequential(*layers)
        self.image_size, self.nz = image_size, nz
        # True for a grey training set (`gan.methods.match_grey`): the three channels are averaged into one grey
        # image, so neither D nor any metric ever sees colour the data cannot have. Saved with the weights.
        self.register_buffer("grey", torch.tensor(False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, nz) or (B, nz, 1, 1) -> images (B, 3, S, S) in [-1, 1] (three equal channels when `grey`)."""
        x = self.net(z.view(z.shape[0], self.nz, 1, 1))
        return torch.where(self.grey, x.mean(1, keepdim=True).expand_as(x), x)  # no host sync on the flag

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "grey", torch.tensor(False))  # weights saved before the flag: colour
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Discriminator(nn.Module):
    def __init__(self, image_size: int = 64, ndf: int = 64):
        super().__init__()
        n = _n_blocks(image_size)
        layers = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]  # no BatchNorm on the input layer
        width = ndf
        for _ in range(n):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),  # halves H and W
                       nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]  # (width,4,4) -> one logit
        self.net = nn.Sequential(*layers)
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) in [-1, 1] -> logits (B,)."""
        return self.net(x).flatten()


def init_weights(m: nn.Module) -> None:
    """The paper's init: conv weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0. Use with `model.apply`."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_dcgan(image_size: int = 64, nz: int = 100, g_width: int = 64, d_width: int = 64
                ) -> tuple[Generator, Discriminator]:
    """A freshly initialised (G, D) pair. Init draws from torch's global RNG: seed it first for a fixed init."""
    G, D = Generator(image_size, nz, g_width), Discriminator(image_size, d_width)
    G.apply(init_weights)
    D.apply(init_weights)
    return G, D
