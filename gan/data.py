"""Image sources -> uint8 tensors (N,3,H,W), and the Parquet image table used for caches and composed sets.

(Skeleton: the data helper fills this module in; `ImageSet` and the function names below are the contract.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSet:
    """Images plus per-image provenance. Every list has one entry per image."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    source: tuple[str, ...]  # "real" or "aug"
    da_type: tuple[str, ...]  # "none" for a real image, else the AUGMENTATIONS key that made it
    index: tuple[int, ...]  # real image: its index in the source; aug: index of its base real image / donor sample

    def __len__(self) -> int:
        return int(self.images.shape[0])


def parse_source(spec: str):
    """Validate a source string's syntax (no I/O). Raises ValueError naming the allowed forms."""
    raise NotImplementedError


def load_real(spec: str, n_real: int, image_size: int, seed: int, *, download: bool = False,
              cache_dir: str | None = None) -> ImageSet:
    raise NotImplementedError
