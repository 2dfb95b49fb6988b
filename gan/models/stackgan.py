"""An unconditional 2-stage GAN in the spirit of StackGAN (Zhang et al. 2016): stage I draws 64x64, stage II refines
the stage-I image to 128x128. The study's "method A".

Stage I is the DCGAN of `gan.models.dcgan` at 64x64 (its G and D, unchanged; `gan.methods` builds it).

Stage II generator: the 64x64 stage-I image and the same noise z that drew it ->
    encode:  conv3x3 (3 -> ngf) + ReLU, then two stride-2 conv4x4 + BatchNorm + ReLU: (4ngf, 16, 16)
    join:    z replicated over the 16x16 grid and concatenated, conv3x3 + BatchNorm + ReLU back to 4ngf
             (z stands in for StackGAN's text code c, so one noise vector fixes a 128x128 sample)
    refine:  2 residual blocks (conv3x3 + BN + ReLU + conv3x3 + BN, added to the input, then ReLU), as StackGAN++
    decode:  three upsampling blocks (nearest x2, conv3x3 + BatchNorm + ReLU), widths 2ngf, ngf, ngf/2, from 16x16
             to 128x128; then conv3x3 to RGB and Tanh.
Stage II discriminator: the DCGAN discriminator at 128x128 (its own network, not shared with stage I).
Init: the DCGAN paper's N(0, 0.02) convs and N(1, 0.02) BatchNorm scales, as stage I.

Training schedule (in `gan.steps`, `gan.methods`): both stages are trained jointly, as StackGAN++ does, so one
iteration is one update of each of G1, D1, G2 and D2 and an iteration budget means the same for every method. Per
iteration: one batch of real images is drawn once and used at 64x64 by stage I and at 128x128 by stage II; stage I
runs its DCGAN update (D1 then G1); stage II refines that iteration's stage-I images *detached* and runs its own
update (D2 then G2). Detached because (i) the original StackGAN trains stage II with stage I held fixed, so no
stage-II gradient reaches G1 there either; (ii) stage I then is exactly a DCGAN at 64x64 (with the same seed it
follows dcgan64 step for step), so method A differs from method B only in what turns 64 into 128; (iii) no
backward pass through G1 for the stage-II loss. The price: G1 is never asked to draw what G2 refines best
(StackGAN++'s joint gradient), which the study did not claim either.

Deliberately left out: text conditioning and conditioning augmentation, a third stage, colour-consistency and
matching-aware losses, spectral norm.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gan.models.dcgan import Discriminator, init_weights

STAGE1_SIZE, STAGE2_SIZE = 64, 128
RES_BLOCKS = 2  # StackGAN++'s count (StackGAN used 4 at 256x256)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    """conv (3x3 stride 1 keeps the size, 4x4 stride 2 halves it) + BatchNorm + ReLU; no bias before BatchNorm."""
    return [nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(width, width),
                                  nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Stage2Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, res_blocks: int = RES_BLOCKS):
        super().__init__()
        if ngf < 2 or ngf % 2:
            raise ValueError(f"stage-II generator width must be an even integer >= 2 (its last block has ngf/2), "
                             f"got {ngf}")
        w = 4 * ngf
        self.encode = nn.Sequential(nn.Conv2d(3, ngf, 3, 1, 1, bias=False), nn.ReLU(True),  # 64x64
                                    *_conv_bn_relu(ngf, 2 * ngf, 4, 2),  # 32x32
                                    *_conv_bn_relu(2 * ngf, w, 4, 2))  # 16x16
        self.join = nn.Sequential(*_conv_bn_relu(w + nz, w))
        self.refine = nn.Sequential(*(ResBlock(w) for _ in range(res_blocks)))
        up = []
        for c_in, c_out in ((w, 2 * ngf), (2 * ngf, ngf), (ngf, ngf // 2)):  # 16 -> 32 -> 64 -> 128
            up += [nn.Upsample(scale_factor=2, mode="nearest"), *_conv_bn_relu(c_in, c_out)]
        self.decode = nn.Sequential(*up, nn.Conv2d(ngf // 2, 3, 3, 1, 1, bias=False), nn.Tanh())
        self.nz = nz

    def forward(self, image: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, 64, 64) in [-1, 1] (stage I's output); z: (B, nz) or (B, nz, 1, 1) -> (B, 3, 128, 128)."""
        h = self.encode(image)
        code = z.reshape(z.shape[0], self.nz, 1, 1).expand(-1, -1, h.shape[2], h.shape[3])
        h = self.join(torch.cat([h, code.to(h.dtype)], dim=1))
        return self.decode(self.refine(h))


def build_stage2(nz: int = 100, g_width: int = 64, d_width: int = 64
                 ) -> tuple[Stage2Generator, Discriminator]:
    """A freshly initialised stage-II (G2, D2). Init draws from torch's global RNG: seed it first."""
    G2, D2 = Stage2Generator(nz, g_width), Discriminator(STAGE2_SIZE, d_width)
    G2.apply(init_weights)
    D2.apply(init_weights)
    return G2, D2

