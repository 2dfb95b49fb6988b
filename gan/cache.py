"""The one cache root and the one image hash.

Every on-disk cache of gansweep (prepared real sets, reference features, donor GANs run outside a sweep) lives under
`cache_root()`: an explicit folder, else ``$GANSWEEP_CACHE``, else ``~/.cache/gansweep``. Caches are keyed by
`image_hash`, a digest of the images' shape and bytes, so two sets with the same pixels share an entry and a changed
pixel misses it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

CACHE_ENV = "GANSWEEP_CACHE"  # env var moving the cache root


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$GANSWEEP_CACHE``, else ``~/.cache/gansweep``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gansweep").expanduser()


def image_hash(images: torch.Tensor) -> str:
    """16 hex digits of sha256 over a uint8 image tensor's shape and bytes."""
    images = images.detach().cpu().contiguous()
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.numpy().tobytes())
    return h.hexdigest()[:16]
