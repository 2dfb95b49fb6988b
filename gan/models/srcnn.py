"""SRCNN (Dong, Loy, He & Tang 2014), the super-resolution network of the study's "method B", in one short file.

As in the paper the network works on the *bicubic-upscaled* low-resolution image (here: 64x64 brought to 128x128 by
the one fixed resize, `gan.realsets.to_size`) and has three convolutions, the paper's 9-1-5 setting:

    patch extraction  9x9 conv, 3 -> 64, ReLU
    non-linear map    1x1 conv, 64 -> 32, ReLU
    reconstruction    5x5 conv, 32 -> 3

trained with the mean squared error against the real 128x128 image (`gan.steps.srcnn_update`), on pairs made from
the real training images. Two departures from the paper, both for a short training run on colour images:

* It predicts the *residual* over the bicubic image (output = input + net(input), as VDSR, Kim et al. 2016, does):
  with the output layer initialised to zero, training starts exactly at bicubic and only has to learn the missing
  detail. The ReLU layers start from He-normal weights.
* Optimiser: Adam, not the paper's SGD run for ~10^8 backprops. The paper's rule that the last layer learns 10x
  slower stays (`param_groups`: each group's `lr_scale`), and the rate is annealed to zero over the SRCNN's
  iterations with a cosine (`gan.steps.srcnn_update`): a short run then ends on settled weights instead of ones that
  still jump by a few tenths of a dB of PSNR from one iteration to the next.
* Convolutions pad ("same", replicating the border) so the output has the input's size and one network serves
  training crops and whole images alike; the paper used unpadded convolutions and a loss on the centre only.
All three RGB channels are restored (the paper's main results restore luminance only).

Deliberately left out: the wider 9-5-5 variants, FSRCNN's learned upsampling, perceptual or adversarial losses.
"""

from __future__ import annotations

import torch
import torch.nn as nn

SCALE = 2  # the upscaling factor this study needs: 64 -> 128
RECEPTIVE_FIELD = 9 + 1 + 5 - 2  # pixels of input one output pixel sees: 13
LAST_LAYER_LR_SCALE = 0.1  # the paper's smaller learning rate of the reconstruction layer


class SRCNN(nn.Module):
    def __init__(self, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 1, f3: int = 5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, n1, f1, padding=f1 // 2, padding_mode="replicate"), nn.ReLU(True),  # patch extraction
            nn.Conv2d(n1, n2, f2, padding=f2 // 2, padding_mode="replicate"), nn.ReLU(True),  # non-linear mapping
            nn.Conv2d(n2, 3, f3, padding=f3 // 2, padding_mode="replicate"))  # reconstruction
        for conv in self.net[:-1]:
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.net[-1].weight)  # the residual starts at zero: the untrained network is bicubic
        nn.init.zeros_(self.net[-1].bias)

    def param_groups(self) -> list[dict]:
        """Optimiser groups: the two ReLU layers at the base rate, the reconstruction layer at a tenth of it (the
        paper: 1e-4 and 1e-5), as `lr_scale` factors of the base rate."""
        return [{"params": [p for m in self.net[:-1] for p in m.parameters()], "lr_scale": 1.0},
                {"params": list(self.net[-1].parameters()), "lr_scale": LAST_LAYER_LR_SCALE}]

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        """upscaled: the bicubic-upscaled image (B, 3, H, W) in [-1, 1] -> the restored image (B, 3, H, W)."""
        return upscaled + self.net(upscaled)


def build_srcnn() -> SRCNN:
    """A freshly initialised SRCNN. Init draws from torch's global RNG: seed it first for a fixed init."""
    return SRCNN()
